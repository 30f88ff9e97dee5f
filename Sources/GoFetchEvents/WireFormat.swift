/// Constants of the trace wire format, version 1 (`docs/wire-format.md`).
public enum WireFormat {
    public static let magic: (UInt8, UInt8) = (0x47, 0x46)
    public static let version: UInt8 = 1
    public static let headerSize = 24
    public static let recordSize = 64
    public static let maxMessageSize = 65_536
    public static let maxPathLength = 4_096
    public static let unknownWorker: Int32 = -1
    public static let unknownEpoch: UInt32 = 0xFFFF_FFFF
}

/// The header of one wire message.
public struct WireHeader: Sendable, Hashable {
    public var source: TraceSource
    public var recordCount: Int
    public var pid: UInt32
    /// Events the sender has dropped so far (cumulative).
    public var droppedTotal: UInt32
    public var sentNanoseconds: UInt64
}

/// Why the decoder rejected a message or a record. Each is counted on its own.
public enum WireDecodeFailure: Int, Sendable, CaseIterable, CustomStringConvertible {
    case shortHeader
    case badMagic
    case unsupportedVersion
    case unknownSource
    case badHeaderSize
    case truncatedRecord
    case badRecordSize
    case unknownKind
    case badPath
    case recordCountMismatch
    case oversizedMessage

    public var description: String {
        switch self {
        case .shortHeader: "message shorter than the 24-byte header"
        case .badMagic: "bad magic"
        case .unsupportedVersion: "unsupported version"
        case .unknownSource: "unknown source"
        case .badHeaderSize: "bad header size"
        case .truncatedRecord: "record runs past the end of the message"
        case .badRecordSize: "record size below 64 or not a multiple of 8"
        case .unknownKind: "unknown record kind"
        case .badPath: "open record with a missing, empty or relative path, or one holding a NUL byte"
        case .recordCountMismatch: "record count does not match the message length"
        case .oversizedMessage: "message larger than 65,536 bytes"
        }
    }
}
