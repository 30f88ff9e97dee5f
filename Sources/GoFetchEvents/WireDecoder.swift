import GoFetchSystem

/// Counts of rejected input by reason.
public struct WireDecodeStatistics: Sendable, Hashable {
    public private(set) var counts = [Int](repeating: 0, count: WireDecodeFailure.allCases.count)

    public init() {}

    public subscript(failure: WireDecodeFailure) -> Int { counts[failure.rawValue] }

    public var total: Int { counts.reduce(0, +) }

    mutating func record(_ failure: WireDecodeFailure) { counts[failure.rawValue] += 1 }

    public mutating func add(_ other: WireDecodeStatistics) {
        for i in counts.indices { counts[i] += other.counts[i] }
    }
}

/// Decodes wire messages into ``AccessEvent``s without ever trusting a field.
///
/// A bad header rejects the whole message; a bad record is skipped (when its size
/// can be trusted) or ends the message (when it cannot). Every rejection is counted.
public struct WireDecoder: Sendable {
    public private(set) var statistics = WireDecodeStatistics()

    public init() {}

    /// Decodes one message, appending its good records to `events`.
    /// - Returns: the header, or `nil` when the header itself was bad.
    @discardableResult
    public mutating func decode(_ bytes: UnsafeRawBufferPointer, into events: inout [AccessEvent]) -> WireHeader? {
        guard bytes.count <= WireFormat.maxMessageSize else {
            statistics.record(.oversizedMessage)
            return nil
        }
        guard bytes.count >= WireFormat.headerSize else {
            statistics.record(.shortHeader)
            return nil
        }
        guard bytes[0] == WireFormat.magic.0, bytes[1] == WireFormat.magic.1 else {
            statistics.record(.badMagic)
            return nil
        }
        guard bytes[2] == WireFormat.version else {
            statistics.record(.unsupportedVersion)
            return nil
        }
        guard let source = TraceSource(rawValue: bytes[3]) else {
            statistics.record(.unknownSource)
            return nil
        }
        let recordCount = Int(bytes.u16(4))
        let headerSize = Int(bytes.u16(6))
        guard headerSize >= WireFormat.headerSize, headerSize <= bytes.count, headerSize % 8 == 0 else {
            statistics.record(.badHeaderSize)
            return nil
        }
        let header = WireHeader(
            source: source, recordCount: recordCount, pid: bytes.u32(8),
            droppedTotal: bytes.u32(12), sentNanoseconds: bytes.u64(16))

        var position = headerSize
        var decoded = 0
        while decoded < recordCount {
            guard position + WireFormat.recordSize <= bytes.count else {
                statistics.record(.truncatedRecord)
                return header
            }
            let size = Int(bytes.u16(position))
            guard size >= WireFormat.recordSize, size % 8 == 0 else {
                // The size cannot be trusted, so neither can anything after it.
                statistics.record(.badRecordSize)
                return header
            }
            guard position + size <= bytes.count else {
                statistics.record(.truncatedRecord)
                return header
            }
            if let event = decodeRecord(bytes, at: position, size: size, source: source, pid: header.pid) {
                events.append(event)
            }
            position += size
            decoded += 1
        }
        if position != bytes.count {
            statistics.record(.recordCountMismatch)
        }
        return header
    }

    private mutating func decodeRecord(
        _ bytes: UnsafeRawBufferPointer, at base: Int, size: Int, source: TraceSource, pid: UInt32
    ) -> AccessEvent? {
        guard let kind = AccessKind(rawValue: bytes[base + 2]) else {
            statistics.record(.unknownKind)
            return nil
        }
        let worker = Int32(bitPattern: bytes.u32(base + 12))
        let epoch = bytes.u32(base + 60)
        var event = AccessEvent(
            kind: kind,
            flags: AccessFlags(rawValue: bytes[base + 3]),
            source: source,
            pid: pid,
            tid: bytes.u32(base + 4),
            fd: Int32(bitPattern: bytes.u32(base + 8)),
            workerID: worker < 0 ? nil : worker,
            epoch: epoch == WireFormat.unknownEpoch ? nil : epoch,
            monotonicNanoseconds: bytes.u64(base + 16),
            device: bytes.u64(base + 24),
            inode: bytes.u64(base + 32),
            offset: bytes.u64(base + 40),
            length: bytes.u64(base + 48),
            durationNanoseconds: bytes.u32(base + 56))
        if kind.hasPath {
            let tail = WireFormat.recordSize
            guard size >= tail + 2 else {
                statistics.record(.badPath)
                return nil
            }
            let pathLength = Int(bytes.u16(base + tail))
            let start = base + tail + 2
            guard pathLength > 0, pathLength <= WireFormat.maxPathLength, start + pathLength <= base + size,
                  let path = PathName.decode(UnsafeRawBufferPointer(rebasing: bytes[start..<start + pathLength])),
                  path.hasPrefix("/")
            else {
                statistics.record(.badPath)
                return nil
            }
            event.path = path
        }
        return event
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) func u16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always) func u32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always) func u64(_ offset: Int) -> UInt64 {
        UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
