import Foundation
import Glibc
@testable import GoFetchEvents
@testable import GoFetchIngest
@testable import GoFetchSystem
@testable import GoFetchRuntime
import Testing

/// One daemon serves every client on a node: what one client sends must not steer
/// what is done with another's identity (docs/security.md).
@Suite("a daemon shared by clients", .serialized)
struct SharedDaemonTests {
    func open(_ file: FileID, uid: UInt32, pid: UInt32, kind: AccessKind = .open) -> TraceEvent {
        let now = Clock.monotonicNanoseconds()
        return TraceEvent(fileID: file, kind: kind, pid: pid, tid: pid, uid: uid, gid: uid,
                          wallNanoseconds: Int64(bitPattern: Clock.wallNanoseconds()), monotonicNanoseconds: now,
                          offset: 0, length: 0, durationNanoseconds: 0)
    }

    @Test("one client's events never choose what is opened as another: a transition another user taught is followed only once this user reported the file",
          .enabled(if: geteuid() == 0, "acting as other users needs root"))
    func confusedDeputy() throws {
        let directory = TemporaryDirectory()
        chmod(directory.path, 0o755)
        let trigger = directory.file("a.bin"), target = directory.file("x.bin")
        let own = [directory.file("c.bin"), directory.file("d.bin")]
        for path in [trigger, target] + own {
            try coldFile(path, size: 64 << 10)
            chmod(path, 0o644)  // both users may read both files: the kernel would not stop it
        }
        let records = ([trigger, target] + own).enumerated().map { index, path in
            FileRecord(id: FileID(index + 1), path: path, device: 0, inode: 0, size: 64 << 10, firstSeenWallNanoseconds: 0)
        }
        let engine = TraceDaemon.makeEngine(configuration: testConfiguration(directory), knownFiles: [], lister: nil, shares: nil, logger: .test)
        engine.start()
        defer { engine.stop() }
        engine.consume(EventBatch(files: records))
        let teacher: UInt32 = 2_000, client: UInt32 = 1_000

        // The teacher opens a then x, again and again: the shared Markov table learns a -> x.
        engine.consume(EventBatch(events: (0..<6).flatMap { _ in [open(1, uid: teacher, pid: 20_001), open(2, uid: teacher, pid: 20_001)] }))
        #expect(waitUntil(seconds: 5) { engine.schedulerStatistics.offered.value > 0 })
        usleep(300_000)
        // A read of x lets x be offered again at once (not only after the de-duplication window).
        engine.consume(EventBatch(events: [open(2, uid: teacher, pid: 20_001, kind: .read)]))
        usleep(100_000)
        try coldFile(target, size: 64 << 10)

        // The client reads its own files in an order Markov follows (its predictions
        // for the client's stream are trusted), then opens a: x is predicted, with
        // confidence, but the client never reported x.
        engine.consume(EventBatch(events: (0..<8).flatMap { _ in [open(3, uid: client, pid: 20_002), open(4, uid: client, pid: 20_002)] }))
        engine.consume(EventBatch(events: [open(1, uid: client, pid: 20_002)]))
        #expect(waitUntil(seconds: 5) { engine.unreported.value > 0 })
        usleep(500_000)
        #expect(try residentPages(target) == 0)

        // Once the client has opened x itself, the same prediction is followed, as the client.
        engine.consume(EventBatch(events: [open(2, uid: client, pid: 20_002), open(2, uid: client, pid: 20_002, kind: .read)]))
        usleep(300_000)
        try coldFile(target, size: 64 << 10)
        let refused = engine.unreported.value
        engine.consume(EventBatch(events: [open(1, uid: client, pid: 20_002)]))
        #expect(waitUntil(seconds: 5) { (try? residentPages(target)) == 16 })
        #expect(engine.unreported.value == refused)
    }

    @Test("a user's share of the daemon's CPU: alone never held, with another user held once spent, grown back at its rate")
    func userShares() {
        let shares = UserShares(share: 0.1, burstNanoseconds: 50_000_000)
        shares.charge(1, nanoseconds: 1e9, now: 0)
        #expect(shares.mayRun(1, now: 0))  // alone: never held, nothing charged
        shares.setSharing(true)
        #expect(shares.mayRun(1, now: 0))  // starts with its burst
        shares.charge(1, nanoseconds: 150_000_000, now: 0)  // 100 ms past it
        #expect(!shares.mayRun(1, now: 0))
        #expect(shares.mayRun(2, now: 0))  // the other user is not held for it
        #expect(!shares.mayRun(1, now: 900_000_000))  // 0.9 s at 0.1 core: 90 ms back, still 10 ms short
        #expect(shares.mayRun(1, now: 1_100_000_000))
        shares.setSharing(false)
        shares.charge(2, nanoseconds: 1e12, now: 1_100_000_000)
        #expect(shares.mayRun(2, now: 1_100_000_000))
    }
}
