import Glibc

/// A Linux path is bytes; gofetch keeps paths as `String`s. A path that is not
/// UTF-8 (a data set named in Latin-1, say) keeps its bytes: each byte that is not
/// part of valid UTF-8 becomes the private-use scalar U+EF00 + byte (U+EF80…U+EFFF),
/// and a genuine scalar of that range is written the same way, byte by byte, so
/// every byte string has exactly one `String` and back. Paths that are UTF-8 and
/// hold none of those scalars (all but a few) are unchanged both ways.
///
/// What reaches a system call goes through ``withCString(_:_:)``; what comes from
/// the kernel or a client through ``decode(_:)``.
public enum PathName {
    private static let escapeBase: UInt32 = 0xEF00
    private static let escapes: ClosedRange<UInt32> = 0xEF80...0xEFFF

    /// The `String` for a path's bytes, or `nil` when they hold a NUL (no file has
    /// such a name: the kernel would stop at it and open another file).
    public static func decode(_ bytes: some Collection<UInt8>) -> String? {
        guard !bytes.contains(0) else { return nil }
        if let text = String(validating: bytes, as: UTF8.self), !mayHoldEscapes(text.utf8) {
            return text
        }
        return slowDecode(bytes)
    }

    /// ``decode(_:)`` for bytes in memory, as wire messages and kernel records hold
    /// them: this one runs once per traced open, and the generic one, called across
    /// modules, walks the bytes through protocol witnesses.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard let base = bytes.baseAddress else { return "" }
        guard memchr(base, 0, bytes.count) == nil else { return nil }
        let units = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        if let text = String(validating: units, as: UTF8.self), !mayHoldEscapes(units) {
            return text
        }
        return slowDecode(units)
    }

    /// Calls `body` with the path's bytes as a C string (see the type's note).
    public static func withCString<R, E: Error>(_ path: String, _ body: (UnsafePointer<CChar>) throws(E) -> R) throws(E) -> R {
        guard mayHoldEscapes(path.utf8) else {
            // Result<R, E> carries the typed error through withCString, which rethrows untyped.
            return try path.withCString { pointer in Result { () throws(E) in try body(pointer) } }.get()
        }
        let bytes = Self.bytes(path).map { CChar(bitPattern: $0) } + [0]
        return try bytes.withUnsafeBufferPointer { buffer throws(E) in try body(buffer.baseAddress!) }
    }

    /// The path's bytes (see the type's note), without a NUL.
    public static func bytes(_ path: String) -> [UInt8] {
        guard mayHoldEscapes(path.utf8) else { return Array(path.utf8) }
        var bytes: [UInt8] = []
        for scalar in path.unicodeScalars {
            if escapes.contains(scalar.value) {
                bytes.append(UInt8(truncatingIfNeeded: scalar.value - escapeBase))
            } else {
                bytes.append(contentsOf: UTF8.encode(scalar)!)
            }
        }
        return bytes
    }

    /// Whether UTF-8 text may hold a scalar of U+EF80…U+EFFF (bytes EE BE xx or EE BF xx).
    private static func mayHoldEscapes(_ utf8: some Sequence<UInt8>) -> Bool {
        var previous: UInt8 = 0
        for byte in utf8 {
            if previous == 0xEE && (byte == 0xBE || byte == 0xBF) { return true }
            previous = byte
        }
        return false
    }

    private static func escape(_ byte: UInt8) -> Unicode.Scalar {
        Unicode.Scalar(escapeBase + UInt32(byte))!
    }

    /// The general case: at each position a valid scalar, else one escaped byte.
    private static func slowDecode(_ input: some Collection<UInt8>) -> String {
        let bytes = Array(input)
        var scalars = String.UnicodeScalarView()
        var index = 0
        while index < bytes.count {
            if let (scalar, length) = scalar(in: bytes, at: index) {
                if escapes.contains(scalar.value) {
                    for byte in bytes[index..<index + length] { scalars.append(escape(byte)) }
                } else {
                    scalars.append(scalar)
                }
                index += length
            } else {
                scalars.append(escape(bytes[index]))
                index += 1
            }
        }
        return String(scalars)
    }

    /// The valid UTF-8 scalar starting at `index` and its length in bytes, if there is one.
    private static func scalar(in bytes: [UInt8], at index: Int) -> (Unicode.Scalar, Int)? {
        let lead = bytes[index]
        let length: Int
        switch lead {
        case 0x00...0x7F: return (Unicode.Scalar(lead), 1)
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return nil
        }
        guard index + length <= bytes.count,
              let text = String(validating: bytes[index..<index + length], as: UTF8.self),
              let scalar = text.unicodeScalars.first, text.unicodeScalars.count == 1 else { return nil }
        return (scalar, length)
    }
}
