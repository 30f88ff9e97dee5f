import CGoFetchLinux
import Foundation
import Glibc
import GoFetchEvents
import GoFetchSystem
import GoFetchTraceSources
import Logging
import Synchronization
import SystemPackage

/// Why the ingest socket could not be set up.
public struct IngestServerError: Error, CustomStringConvertible, Sendable {
    public var socketPath: String
    public var problem: String

    public var description: String { "cannot listen on \(socketPath): \(problem)" }
}

/// The daemon's receive path: a `SOCK_SEQPACKET` listener and a dedicated thread
/// that drains every client with `recvmmsg`, decodes, and feeds the pipeline.
public final class IngestServer: @unchecked Sendable {
    public let socketPath: String
    private let socketMode: UInt32
    private let maxClients: Int
    private let pipeline: IngestPipeline
    private let statistics: IngestStatistics
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private var thread: JoinableThread?
    private var listener: FileDescriptor?
    private var epoll: FileDescriptor?

    // Confined to the receive thread.
    private struct Client {
        var fd: FileDescriptor
        var pid: UInt32
        var uid: UInt32
        var gid: UInt32
        var parentPID: UInt32
        var privileged: Bool
        var droppedTotal: UInt32 = 0
        /// Pids this client sent events for (a privileged client may speak for others).
        var pids: Set<UInt32> = []
    }
    private var clients: [UInt64: Client] = [:]
    /// Connections open per uid: one user may hold at most half of `maxClients`, so
    /// that the others can still connect.
    private var connectionsByUID: [UInt32: Int] = [:]
    private var maxClientsPerUser: Int { max(1, maxClients / 2) }
    private var nextToken: UInt64 = 1
    /// Events received so far (what the store's cost per event is charged on).
    private var eventsReceived = 0
    private var decoder = WireDecoder()
    private var reportedFailures = WireDecodeStatistics()
    private static let listenerToken = UInt64.max
    private static let kernelSourceToken = UInt64.max - 1
    private static let listingsToken = UInt64.max - 2
    /// A kernel trace source read on the receive thread beside the clients.
    public let kernelSource: (any KernelTraceSource)?
    private static let batch = 64

    /// Each user's share of the daemon's CPU (``UserShares``): a user past it has its
    /// sockets left unread until its share has grown back, so what it sends waits in its
    /// own sockets, and a flood fills them and is dropped by its sender.
    private let shares: UserShares?
    /// What storing one event costs, as the store measured it (charged to its sender).
    private let storeNanosecondsPerEvent: (@Sendable () -> Double)?
    private let pace: IngestPace

    /// - Parameters:
    ///   - kernelSource: a kernel trace source (fanotify, eBPF) read beside the clients.
    ///   - storeNanosecondsPerEvent: what storing one event costs, charged to its sender's share.
    ///   - pace: how long passes over the clients' sockets are apart while they send.
    public init(socketPath: String, socketMode: UInt32, maxClients: Int, shares: UserShares? = nil, pipeline: IngestPipeline,
                kernelSource: (any KernelTraceSource)? = nil, storeNanosecondsPerEvent: (@Sendable () -> Double)? = nil,
                pace: IngestPace = IngestPace(), statistics: IngestStatistics, logger: Logger) {
        self.pace = pace
        self.kernelSource = kernelSource
        self.storeNanosecondsPerEvent = storeNanosecondsPerEvent
        self.socketPath = socketPath
        self.socketMode = socketMode
        self.maxClients = maxClients
        self.shares = shares
        self.pipeline = pipeline
        self.statistics = statistics
        self.logger = logger
    }

    /// Binds the socket and starts the receive thread.
    public func start() throws(IngestServerError) {
        var fd: FileDescriptor?
        var poller: FileDescriptor?
        do {
            let directory = (socketPath as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try Syscall.makeDirectory(directory, mode: 0o700)
                try checkSocketDirectory(directory)
            }
            try removeStaleSocket()
            let socket = try Syscall.socket(domain: AF_UNIX, type: CGoFetch_SOCK_SEQPACKET | CGoFetch_SOCK_NONBLOCK | CGoFetch_SOCK_CLOEXEC)
            fd = socket
            try Syscall.bind(socket, unixPath: socketPath)
            try Syscall.chmod(socketPath, mode: mode_t(socketMode))
            try Syscall.listen(socket, backlog: 512)
            let epoll = try Syscall.epollCreate()
            poller = epoll
            try Syscall.epollAdd(epoll, socket, events: CGoFetch_EPOLLIN, token: Self.listenerToken)
            if let kernelSource { try Syscall.epollAdd(epoll, kernelSource.pollDescriptor, events: CGoFetch_EPOLLIN, token: Self.kernelSourceToken) }
            // Listings are registered every pass; this only makes a pass come when they are ready.
            if let ready = pipeline.lister?.listingsReady { try Syscall.epollAdd(epoll, ready, events: CGoFetch_EPOLLIN, token: Self.listingsToken) }
        } catch {
            try? fd?.close()
            try? poller?.close()
            if let error = error as? IngestServerError { throw error }
            throw IngestServerError(socketPath: socketPath, problem: "\(error)")
        }
        listener = fd
        epoll = poller
        Syscall.raiseOpenFileLimit()
        thread = JoinableThread(name: "gofetch-ingest") { [self] in run() }
    }

    /// The socket's folder must be ours and closed to others: in a shared folder such
    /// as /tmp, someone else could otherwise put their own socket in our place.
    private func checkSocketDirectory(_ directory: String) throws {
        guard let status = try? Syscall.fileStatus(directory, followSymlinks: false) else {
            throw IngestServerError(socketPath: socketPath, problem: "cannot stat \(directory)")
        }
        guard status.kind == .directory, status.owner == geteuid(), status.mode & 0o022 == 0 else {
            throw IngestServerError(
                socketPath: socketPath,
                problem: "\(directory) must be a directory owned by uid \(geteuid()) and not writable by group or others")
        }
    }

    /// A socket file left by a daemon that died is removed; a live daemon is an error.
    private func removeStaleSocket() throws {
        guard FileManager.default.fileExists(atPath: socketPath) else { return }
        let probe = try Syscall.socket(domain: AF_UNIX, type: CGoFetch_SOCK_SEQPACKET | CGoFetch_SOCK_CLOEXEC)
        defer { try? probe.close() }
        if (try? Syscall.connect(probe, unixPath: socketPath)) != nil {
            throw IngestServerError(socketPath: socketPath, problem: "another gofetch daemon is listening there (stop it, or set daemon.socket_path)")
        }
        try Syscall.unlinkIfPresent(socketPath)
    }

    /// Clients connected now.
    public var connectedClients: Int { statistics.connectionsOpen.value }

    /// Stops receiving after draining what the clients already sent; returns when the thread is gone.
    public func stop() {
        guard listener != nil, !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        thread?.join()
        for client in clients.values { try? client.fd.close() }
        clients.removeAll()
        try? epoll?.close()
        try? listener?.close()
        try? Syscall.unlinkIfPresent(socketPath)
        listener = nil
    }

    private func run() {
        let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.batch * WireFormat.maxMessageSize, alignment: 16)
        defer { buffers.deallocate() }
        let slots = UnsafeMutableBufferPointer<CGoFetch_message_slot>.allocate(capacity: Self.batch)
        defer { slots.deallocate() }
        let tokens = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: 256)
        defer { tokens.deallocate() }
        let readiness = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: 256)
        defer { readiness.deallocate() }
        for i in 0..<Self.batch {
            slots[i] = CGoFetch_message_slot(
                base: buffers.baseAddress! + i * WireFormat.maxMessageSize, capacity: WireFormat.maxMessageSize,
                length: 0, truncated: 0)
        }
        var events: [AccessEvent] = []
        events.reserveCapacity(Self.batch * 256)

        while !stopping.load(ordering: .acquiring) {
            guard let epoll, let count = try? Syscall.epollWait(epoll, tokens: tokens, events: readiness, timeoutMilliseconds: 50) else { break }
            let passStarted = Clock.monotonicNanoseconds()
            let (readsBefore, coldBefore) = (statistics.reads.load(ordering: .relaxed), statistics.coldReads.load(ordering: .relaxed))
            for i in 0..<count {
                let token = tokens[i]
                if token == Self.listenerToken {
                    acceptClients()
                } else if token == Self.kernelSourceToken {
                    drainKernelSource()
                } else if token == Self.listingsToken {
                    continue  // registerListings below takes them (and resets the counter)
                } else if sharing, let shares, let uid = clients[token]?.uid {
                    guard shares.mayRun(uid) else {
                        statistics.heldForShare.add(1)
                        continue
                    }
                    // One batch per pass while users share the daemon: each is charged as
                    // it is received (and for storing its events), and goes past its share
                    // by one batch at most.
                    let received = eventsReceived
                    shares.measured(uid) { drain(token, slots: slots, events: &events, batches: 1) }
                    shares.charge(uid, nanoseconds: Double(eventsReceived - received) * (storeNanosecondsPerEvent?() ?? 0))
                } else {
                    drain(token, slots: slots, events: &events)
                }
            }
            pipeline.registerListings()
            pipeline.flush()
            publishDecodeFailures()
            // While clients send, take what they sent in passes apart (IngestPace): one wake-up
            // of this thread and the engine's per pass, not per message (a job closing
            // 2,500 files a second sends 2,500 messages). Messages wait in their sockets
            // meanwhile; the shim holds events up to 2 ms anyway.
            if count > 0 {
                let interval = pace.interval(reads: statistics.reads.load(ordering: .relaxed) - readsBefore,
                                             cold: statistics.coldReads.load(ordering: .relaxed) - coldBefore)
                statistics.passes.add(1)
                if interval > IngestPace.promptNanoseconds { statistics.relaxedPasses.add(1) }
                let elapsed = Clock.monotonicNanoseconds() &- passStarted
                if elapsed < interval { Syscall.sleep(nanoseconds: interval - elapsed) }
            }
        }
        // Final drain: everything clients sent before stop() is ingested, including
        // clients that connected, sent and left before they were accepted.
        acceptClients()
        for token in Array(clients.keys) {
            while drain(token, slots: slots, events: &events) { pipeline.flush() }
        }
        drainKernelSource()
        pipeline.flush()
        publishDecodeFailures()
    }

    private func drainKernelSource() {
        kernelSource?.drain({ events, uid, gid, parent in
            statistics.messagesReceived.add(1)
            pipeline.ingest(events, uid: uid, gid: gid, parentPID: parent)
        }, ended: { pid in
            pipeline.flush()  // its last events first
            pipeline.processEnded(pid)
        })
    }

    private func acceptClients() {
        guard let listener else { return }
        while true {
            let accepted: FileDescriptor?
            do {
                accepted = try Syscall.accept(listener)
            } catch {
                // Out of descriptors: the waiting client stays queued; pause instead of spinning.
                logger.warning("cannot accept a client", metadata: ["error": "\(error)"])
                usleep(10_000)
                return
            }
            guard let fd = accepted else { return }
            guard clients.count < maxClients, let credentials = try? Syscall.peerCredentials(fd) else {
                statistics.connectionsRefused.add(1)
                try? fd.close()
                continue
            }
            // The socket's mode already limits who can connect; without group or
            // other access, only our own uid and root are expected here.
            let ownUID = getuid()
            if socketMode & 0o077 == 0 && credentials.uid != ownUID && credentials.uid != 0 {
                statistics.connectionsRefused.add(1)
                logger.warning("refused client", metadata: ["pid": "\(credentials.pid)", "uid": "\(credentials.uid)"])
                try? fd.close()
                continue
            }
            guard connectionsByUID[credentials.uid, default: 0] < maxClientsPerUser else {
                statistics.connectionsRefused.add(1)
                logger.warning("refused client: its user holds half the connections (daemon.max_clients)", metadata: ["pid": "\(credentials.pid)", "uid": "\(credentials.uid)"])
                try? fd.close()
                continue
            }
            let token = nextToken
            nextToken += 1
            guard let epoll, (try? Syscall.epollAdd(epoll, fd, events: CGoFetch_EPOLLIN | CGoFetch_EPOLLRDHUP, token: token)) != nil else {
                try? fd.close()
                continue
            }
            clients[token] = Client(fd: fd, pid: UInt32(bitPattern: credentials.pid), uid: credentials.uid, gid: credentials.gid,
                parentPID: ProcessStat.parentPID(of: UInt32(bitPattern: credentials.pid)), privileged: credentials.uid == 0)
            connectionsByUID[credentials.uid, default: 0] += 1
            updateSharing()
            statistics.connectionsAccepted.add(1)
            statistics.connectionsOpen.add(1)
        }
    }

    /// Whether more than one user is connected (``UserShares`` hold users back only then).
    private var sharing: Bool { connectionsByUID.count > 1 }

    private func updateSharing() {
        shares?.setSharing(sharing)
    }

    /// Receives what one client sent; `true` when it stopped at its share with more waiting.
    @discardableResult
    private func drain(_ token: UInt64, slots: UnsafeMutableBufferPointer<CGoFetch_message_slot>, events: inout [AccessEvent],
                       batches: Int = 16) -> Bool {
        guard var client = clients[token] else { return false }
        // At most 16 batches per turn, so one busy client cannot starve the others;
        // epoll reports it again while it has more.
        for _ in 0..<batches {
            let received: Int
            do {
                received = try Syscall.receiveMessages(client.fd, slots)
            } catch {
                disconnect(token)
                return false
            }
            if received == 0 {
                // Nothing waiting: either the peer is still there or it hung up.
                if Syscall.peerHungUp(client.fd) { disconnect(token) } else { clients[token] = client }
                return false
            }
            var gotEOF = false
            for i in 0..<received {
                let slot = slots[i]
                if slot.length == 0 {
                    gotEOF = true  // a zero-length read on a seqpacket socket is end of stream
                    break
                }
                statistics.messagesReceived.add(1)
                if slot.truncated != 0 {
                    statistics.messagesTruncated.add(1)
                    continue
                }
                events.removeAll(keepingCapacity: true)
                guard let header = decoder.decode(UnsafeRawBufferPointer(start: slot.base, count: slot.length), into: &events) else {
                    continue
                }
                if header.pid != client.pid {
                    if client.privileged {
                        if client.pids.count < 4_096 { client.pids.insert(header.pid) }
                    } else {
                        statistics.pidMismatch.add(1)
                        for j in events.indices { events[j].pid = client.pid }
                    }
                }
                if header.droppedTotal > client.droppedTotal {
                    statistics.clientDropped.add(Int(header.droppedTotal - client.droppedTotal))
                    client.droppedTotal = header.droppedTotal
                }
                eventsReceived += events.count
                pipeline.ingest(events, uid: client.uid, gid: client.gid, parentPID: client.parentPID)
            }
            clients[token] = client
            if gotEOF {
                disconnect(token)
                return false
            }
            if received < slots.count { return false }
        }
        clients[token] = client
        return true
    }

    private func disconnect(_ token: UInt64) {
        guard let client = clients.removeValue(forKey: token) else { return }
        let held = connectionsByUID[client.uid, default: 1] - 1
        connectionsByUID[client.uid] = held > 0 ? held : nil
        if held <= 0 { shares?.forget(client.uid) }
        updateSharing()
        if let epoll { try? Syscall.epollRemove(epoll, client.fd) }
        try? client.fd.close()
        statistics.connectionsOpen.add(-1)
        for pid in client.pids.union([client.pid]) where !clients.values.contains(where: { $0.pid == pid || $0.pids.contains(pid) }) {
            pipeline.processEnded(pid)
        }
    }

    private func publishDecodeFailures() {
        guard decoder.statistics != reportedFailures else { return }
        reportedFailures = decoder.statistics
        statistics.setDecodeStatistics(reportedFailures)
    }
}
