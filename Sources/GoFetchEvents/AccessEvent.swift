/// What a traced process did to a file.
public enum AccessKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case open = 1
    case read = 2
    case mmap = 3
    case close = 4
    /// The sender starts an epoch (Python hook). Not a file access: not stored.
    case epoch = 5
    /// One upcoming file, in order, from the data loader's sampler (Python hook). Not stored.
    case lookahead = 6

    /// The seed's `access_type` column.
    public var description: String {
        switch self {
        case .open: "open"
        case .read: "read"
        case .mmap: "mmap"
        case .close: "close"
        case .epoch: "epoch"
        case .lookahead: "lookahead"
        }
    }

    /// The kinds that are file accesses (stored, counted as such).
    public static let accesses: [AccessKind] = [.open, .read, .mmap, .close]

    /// Open and lookahead records carry a path.
    public var hasPath: Bool { self == .open || self == .lookahead }
}

/// Which trace source produced an event.
public enum TraceSource: UInt8, Sendable, CustomStringConvertible {
    case preload = 1
    case pythonHook = 2
    case fanotify = 3
    case ebpf = 4

    public var description: String {
        switch self {
        case .preload: "preload"
        case .pythonHook: "python-hook"
        case .fanotify: "fanotify"
        case .ebpf: "ebpf"
        }
    }
}

/// Per-record flags of the wire format (see `docs/wire-format.md`).
public struct AccessFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The call went through a stdio `FILE*`.
    public static let stdio = AccessFlags(rawValue: 1 << 0)
    /// The path was longer than the wire format carries and was cut.
    public static let pathTruncated = AccessFlags(rawValue: 1 << 1)
    /// `readv` / `preadv`: one record for several buffers.
    public static let vectored = AccessFlags(rawValue: 1 << 2)
    /// `pread` family: the offset was explicit.
    public static let positional = AccessFlags(rawValue: 1 << 3)
    /// Lookahead: the first record of a new announcement (earlier lists of the sender are void).
    public static let announcementStart = AccessFlags(rawValue: 1 << 4)
    /// Open: the shim asked for the whole (small) file at open (`trace.open_readahead_kb`).
    public static let warmedAtOpen = AccessFlags(rawValue: 1 << 5)
}

/// One access event as a trace source reports it, before ingest resolves its file.
public struct AccessEvent: Sendable, Hashable {
    public var kind: AccessKind
    public var flags: AccessFlags
    public var source: TraceSource
    public var pid: UInt32
    public var tid: UInt32
    public var fd: Int32
    /// Data-loader worker id, `nil` when unknown.
    public var workerID: Int32?
    /// Training epoch, `nil` when unknown.
    public var epoch: UInt32?
    /// `CLOCK_MONOTONIC` nanoseconds when the call started.
    public var monotonicNanoseconds: UInt64
    public var device: UInt64
    public var inode: UInt64
    /// Read / mmap: file offset. Open: the `open` flags.
    public var offset: UInt64
    /// Read: bytes returned. Mmap: mapping length. Open: file size. Close: 0.
    public var length: UInt64
    /// Time the application spent in the call.
    public var durationNanoseconds: UInt32
    /// Absolute path; present on open events only.
    public var path: String?

    public init(
        kind: AccessKind, flags: AccessFlags = [], source: TraceSource = .preload,
        pid: UInt32, tid: UInt32, fd: Int32, workerID: Int32? = nil, epoch: UInt32? = nil,
        monotonicNanoseconds: UInt64, device: UInt64, inode: UInt64,
        offset: UInt64, length: UInt64, durationNanoseconds: UInt32, path: String? = nil
    ) {
        self.kind = kind
        self.flags = flags
        self.source = source
        self.pid = pid
        self.tid = tid
        self.fd = fd
        self.workerID = workerID
        self.epoch = epoch
        self.monotonicNanoseconds = monotonicNanoseconds
        self.device = device
        self.inode = inode
        self.offset = offset
        self.length = length
        self.durationNanoseconds = durationNanoseconds
        self.path = path
    }
}
