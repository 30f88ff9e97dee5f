import Foundation

/// Hugging Face's safetensors format, for 32-bit float tensors: an 8-byte
/// little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, …,
/// "__metadata__": {"key": "value", …}}`, padded with spaces to a multiple of 8),
/// then the tensors' raw little-endian bytes, offsets counted from the end of the
/// header. Python reads it with `safetensors.numpy.load_file` or `safe_open`.
public struct SafeTensors: Sendable, Equatable {
    public struct Tensor: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]

        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// In file order.
    public var tensors: [Tensor]
    /// Free-form string pairs (`__metadata__`).
    public var metadata: [String: String]

    public init(tensors: [Tensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// Why bytes are not a safetensors file this reader takes.
    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public var problem: String
        public var description: String { "not a valid safetensors file: \(problem)" }
    }

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        var header: [String: Any] = [:]
        var offset = 0
        for tensor in tensors {
            precondition(tensor.shape.reduce(1, *) == tensor.values.count, "tensor \(tensor.name): shape \(tensor.shape) does not hold \(tensor.values.count) values")
            let end = offset + 4 * tensor.values.count
            header[tensor.name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, end]] as [String: Any]
            offset = end
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        // Sorted keys: the same model gives the same bytes.
        var json = Array((try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8))
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes += $0 }
        bytes += json
        for tensor in tensors {
            for value in tensor.values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 } }
        }
        return bytes
    }

    /// Reads a file's bytes, checking every offset against the data.
    public init(decoding bytes: [UInt8]) throws(FormatError) {
        guard bytes.count >= 8 else { throw FormatError(problem: "\(bytes.count) bytes, shorter than the header length") }
        let length = bytes[0..<8].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= 100_000_000, 8 + Int(length) <= bytes.count else { throw FormatError(problem: "header length \(length) beyond the file's \(bytes.count) bytes") }
        let dataStart = 8 + Int(length)
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])) as? [String: Any] else {
            throw FormatError(problem: "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var tensors: [(begin: Int, tensor: Tensor)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let pairs = value as? [String: String] else { throw FormatError(problem: "__metadata__ is not an object of strings") }
                metadata = pairs
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw FormatError(problem: "tensor \(name): needs dtype, shape and data_offsets") }
            guard dtype == "F32" else { throw FormatError(problem: "tensor \(name): dtype \(dtype); this reader takes F32") }
            let (begin, end) = (offsets[0], offsets[1])
            // The element count, or -1 when the shape is negative or absurd (no overflow traps on damaged files).
            let count = shape.reduce(1) { total, size in
                guard total >= 0, size >= 0, size < 1 << 31, total < 1 << 31 else { return -1 }
                return total * size
            }
            guard count >= 0, count < 1 << 31, begin >= 0, begin <= end, end <= bytes.count - dataStart, end - begin == 4 * count else {
                throw FormatError(problem: "tensor \(name): offsets \(begin)…\(end) do not fit shape \(shape) in \(bytes.count - dataStart) data bytes")
            }
            let values = bytes[(dataStart + begin)..<(dataStart + end)].withUnsafeBytes { raw in
                (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            tensors.append((begin, Tensor(name: name, shape: shape, values: values)))
        }
        self.init(tensors: tensors.sorted { $0.begin < $1.begin }.map(\.tensor), metadata: metadata)
    }
}
