import GoFetchIngest
import GoFetchMetrics
import GoFetchSchedule
import GoFetchStore
import GoFetchTraceSources
import Logging
import ServiceLifecycle
import Synchronization

/// A part of the daemon that works on threads of its own, because it blocks where
/// Swift's concurrency must not (epoll, pread, SQLite): started in the daemon's
/// order before anything is received, stopped when shutdown reaches it.
public protocol ThreadedComponent: AnyObject, Sendable {
    func start() throws
    func stop()
}

extension StoreWriter: ThreadedComponent {}
/// Stopping it leaves its thread running: ``TraceDaemon/finish()`` copies the rest of
/// the run once it has ended, then stops it.
extension ClusterCopier: ThreadedComponent {
    public func stop() {}
}
extension PrefetchEngine: ThreadedComponent {}
extension DirectoryLister: ThreadedComponent {}
extension MetricsReporter: ThreadedComponent {}
extension IngestServer: ThreadedComponent {}
extension CgroupTracer: ThreadedComponent {}

/// The Prometheus exposition: a failure to serve it is logged, never the daemon's.
final class PrometheusComponent: ThreadedComponent {
    private let server: PrometheusServer
    private let logger: Logger

    init(server: PrometheusServer, logger: Logger) {
        self.server = server
        self.logger = logger
    }

    func start() {
        do {
            try server.start()
            logger.info("serving Prometheus metrics", metadata: ["address": "\(server.address)", "port": "\(server.port)"])
        } catch {
            logger.warning("Prometheus metrics not served", metadata: ["address": "\(server.address)", "error": "\(error)"])
        }
    }

    func stop() { server.stop() }
}

/// A component that says so once it has started (the ingest server: "listening").
final class AnnouncedComponent: ThreadedComponent {
    private let wrapped: any ThreadedComponent
    private let announce: @Sendable () -> Void

    init(_ wrapped: any ThreadedComponent, announce: @escaping @Sendable () -> Void) {
        self.wrapped = wrapped
        self.announce = announce
    }

    func start() throws {
        try wrapped.start()
        announce()
    }

    func stop() { wrapped.stop() }
}

/// Opens once a component has started; a service that must start after it waits on
/// it. A wait ends with `false` when its task is cancelled first (the group is failing).
public final class StartGate: Sendable {
    private struct State {
        var open = false
        var nextWaiter = 0
        var waiting: [Int: UnsafeContinuation<Bool, Never>] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    func open() {
        let waiting = state.withLock { state in
            state.open = true
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for continuation in waiting { continuation.resume(returning: true) }
    }

    /// Whether the gate opened (else the task was cancelled while waiting).
    public func wait() async -> Bool {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                // Under the lock: cancellation either ran before (Task.isCancelled) or finds the waiter.
                let now: Bool? = state.withLock { state in
                    if state.open { return true }
                    if Task.isCancelled { return false }
                    state.waiting[id] = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { $0.waiting.removeValue(forKey: id) }?.resume(returning: false)
        }
    }
}

/// A component as a swift-service-lifecycle service: it starts the component once
/// `after` has opened (the component before it in the daemon's order has started),
/// opens its own gate, runs until graceful shutdown (or cancellation) reaches it,
/// then stops the component. A `ServiceGroup` shuts its services down in the reverse
/// of their order, each after the one before it has stopped: the daemon's order of
/// start-up, undone. A component that fails to start throws, which cancels the group.
public struct ComponentService: Service, CustomStringConvertible {
    public let description: String
    let component: any ThreadedComponent
    let after: StartGate?
    /// Opens when the component has started.
    public let started: StartGate

    init(_ name: String, _ component: any ThreadedComponent, after: StartGate?) {
        description = name
        self.component = component
        self.after = after
        started = StartGate()
    }

    /// Services for `components`, each started after the one before it.
    public static func chain(_ components: [(name: String, component: any ThreadedComponent)], after first: StartGate? = nil) -> [ComponentService] {
        var previous = first
        return components.map { part in
            let service = ComponentService(part.name, part.component, after: previous)
            previous = service.started
            return service
        }
    }

    public func run() async throws {
        if let after, await !after.wait() { return }
        try component.start()
        started.open()
        try? await gracefulShutdown()
        component.stop()
    }
}
