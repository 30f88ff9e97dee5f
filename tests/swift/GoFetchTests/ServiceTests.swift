import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import GoFetchRuntime

/// The daemon's parts as services in one group: started in order, each after the one
/// before it, stopped in reverse; a part that fails to start fails the group.
@Suite("services")
struct ServiceTests {
    final class Journal: Sendable {
        let entries = Mutex<[String]>([])
        func add(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
    }

    struct StartFailed: Error {}

    final class Part: ThreadedComponent {
        let name: String
        let journal: Journal
        let fails: Bool

        init(_ name: String, _ journal: Journal, fails: Bool = false) {
            self.name = name
            self.journal = journal
            self.fails = fails
        }

        func start() throws {
            // A slow first part: the others must still wait for it.
            if name == "a" { usleep(50_000) }
            if fails { throw StartFailed() }
            journal.add("start \(name)")
        }

        func stop() { journal.add("stop \(name)") }
    }

    /// Ends once the last part has started, which shuts the group down gracefully (as a job does).
    struct Trigger: Service {
        let after: StartGate
        let journal: Journal

        func run() async throws {
            guard await after.wait() else { return }
            journal.add("all started")
        }
    }

    @Test("each part starts after the one before it, and graceful shutdown stops them in reverse")
    func order() async throws {
        let journal = Journal()
        let parts = ComponentService.chain(["a", "b", "c", "d"].map { ($0, Part($0, journal) as any ThreadedComponent) })
        let trigger = Trigger(after: parts.last!.started, journal: journal)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: parts.map { .init(service: $0) } + [.init(service: trigger, successTerminationBehavior: .gracefullyShutdownGroup)],
            logger: .test))
        try await group.run()
        #expect(journal.all == ["start a", "start b", "start c", "start d", "all started", "stop d", "stop c", "stop b", "stop a"])
    }

    @Test("a part that fails to start fails the group: those after it never start, those before it are stopped")
    func failure() async throws {
        let journal = Journal()
        let parts = ComponentService.chain([
            ("a", Part("a", journal)), ("b", Part("b", journal, fails: true)), ("c", Part("c", journal)),
        ])
        let trigger = Trigger(after: parts.last!.started, journal: journal)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: parts.map { .init(service: $0) } + [.init(service: trigger, successTerminationBehavior: .gracefullyShutdownGroup)],
            logger: .test))
        await #expect(throws: StartFailed.self) { try await group.run() }
        #expect(journal.all == ["start a", "stop a"])
    }
}
