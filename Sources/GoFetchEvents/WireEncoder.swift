import GoFetchSystem

/// Builds wire messages. The preload shim has its own C encoder; this one serves
/// the in-process sources, the tests and the ingest benchmark.
public struct WireEncoder: Sendable {
    public let source: TraceSource
    public let pid: UInt32
    public var droppedTotal: UInt32 = 0
    private var records: [UInt8] = []
    public private(set) var recordCount = 0

    public init(source: TraceSource = .preload, pid: UInt32) {
        self.source = source
        self.pid = pid
    }

    /// Bytes the message would have now.
    public var messageSize: Int { WireFormat.headerSize + records.count }

    /// Appends one event; the path is written for open events.
    public mutating func append(_ event: AccessEvent) {
        let pathBytes = event.kind.hasPath ? Array(PathName.bytes(event.path ?? "").prefix(WireFormat.maxPathLength)) : []
        let tail = event.kind.hasPath ? 2 + pathBytes.count : 0
        let size = (WireFormat.recordSize + tail + 7) & ~7
        records.reserveCapacity(records.count + size)
        put16(UInt16(size))
        records.append(event.kind.rawValue)
        records.append(event.flags.rawValue)
        put32(event.tid)
        put32(UInt32(bitPattern: event.fd))
        put32(UInt32(bitPattern: event.workerID ?? WireFormat.unknownWorker))
        put64(event.monotonicNanoseconds)
        put64(event.device)
        put64(event.inode)
        put64(event.offset)
        put64(event.length)
        put32(event.durationNanoseconds)
        put32(event.epoch ?? WireFormat.unknownEpoch)
        if event.kind.hasPath {
            put16(UInt16(pathBytes.count))
            records.append(contentsOf: pathBytes)
            records.append(contentsOf: repeatElement(0, count: size - WireFormat.recordSize - tail))
        }
        recordCount += 1
    }

    /// The finished message; the encoder is emptied.
    public mutating func finish(sentNanoseconds: UInt64 = 0) -> [UInt8] {
        var message: [UInt8] = [WireFormat.magic.0, WireFormat.magic.1, WireFormat.version, source.rawValue]
        message.reserveCapacity(messageSize)
        withUnsafeBytes(of: UInt16(recordCount).littleEndian) { message.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt16(WireFormat.headerSize).littleEndian) { message.append(contentsOf: $0) }
        withUnsafeBytes(of: pid.littleEndian) { message.append(contentsOf: $0) }
        withUnsafeBytes(of: droppedTotal.littleEndian) { message.append(contentsOf: $0) }
        withUnsafeBytes(of: sentNanoseconds.littleEndian) { message.append(contentsOf: $0) }
        message.append(contentsOf: records)
        records.removeAll(keepingCapacity: true)
        recordCount = 0
        return message
    }

    private mutating func put16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { records.append(contentsOf: $0) } }
    private mutating func put32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { records.append(contentsOf: $0) } }
    private mutating func put64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { records.append(contentsOf: $0) } }
}
