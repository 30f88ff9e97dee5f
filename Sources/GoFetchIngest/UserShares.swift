import GoFetchSystem
import Synchronization

/// How much of the daemon's CPU each user may still take, while more than one user
/// is connected: a shared daemon must not let one client's flood cost the others.
///
/// Each user's balance grows at `share` of one core (up to a saved-up `burst`) and
/// is charged with the time the daemon's threads measured on its behalf: the
/// receive thread its decoding and cataloguing (and the store's cost per event),
/// the engine its predictions. A user at or below zero waits: the receive thread
/// leaves its sockets unread, the engine leaves its queued events for later. The
/// prefetch reads are left out; the scheduler's per-user queues share those.
public final class UserShares: Sendable {
    /// Share of one core per user; 0 turns the bound off.
    public let share: Double
    public let burstNanoseconds: Double
    private let balances = Mutex([UInt32: (nanoseconds: Double, updated: UInt64)]())
    private let sharing = Atomic<Bool>(false)

    /// Whether users are held back at all now (more than one connected): measuring
    /// what each costs is skipped otherwise.
    public var isSharing: Bool { share > 0 && sharing.load(ordering: .relaxed) }

    public init(share: Double, burstNanoseconds: Double = 50_000_000) {
        self.share = share
        self.burstNanoseconds = burstNanoseconds
    }

    /// Set by the receive thread: whether more than one user is connected. Alone, a
    /// user is never held back, and balances start afresh when sharing begins.
    public func setSharing(_ sharing: Bool) {
        balances.withLock { balances in
            guard self.sharing.exchange(sharing, ordering: .relaxed) != sharing else { return }
            balances.removeAll()
        }
    }

    /// Whether `uid` may be served now.
    public func mayRun(_ uid: UInt32, now: UInt64 = Clock.monotonicNanoseconds()) -> Bool {
        guard isSharing else { return true }
        return balances.withLock { refreshed(&$0, uid, now) > 0 }
    }

    /// Charges `nanoseconds` of CPU spent for `uid`.
    public func charge(_ uid: UInt32, nanoseconds: Double, now: UInt64 = Clock.monotonicNanoseconds()) {
        guard isSharing, nanoseconds > 0 else { return }
        balances.withLock { balances in
            let balance = refreshed(&balances, uid, now)
            balances[uid] = (balance - nanoseconds, now)
        }
    }

    /// Runs `body` and, while users share the daemon, charges `uid` the calling
    /// thread's CPU time in it (a system call each side, so only then).
    public func measured<T>(_ uid: UInt32, _ body: () -> T) -> T {
        guard isSharing else { return body() }
        let cpu = Clock.threadCPUNanoseconds()
        defer { charge(uid, nanoseconds: Double(Clock.threadCPUNanoseconds() &- cpu)) }
        return body()
    }

    /// A user gone from the daemon: its balance is dropped (bounded by the users connected).
    public func forget(_ uid: UInt32) {
        balances.withLock { _ = $0.removeValue(forKey: uid) }
    }

    private func refreshed(_ balances: inout [UInt32: (nanoseconds: Double, updated: UInt64)], _ uid: UInt32, _ now: UInt64) -> Double {
        guard let (balance, updated) = balances[uid] else {
            balances[uid] = (burstNanoseconds, now)
            return burstNanoseconds
        }
        let grown = min(burstNanoseconds, balance + Double(now &- updated) * share)
        balances[uid] = (grown, now)
        return grown
    }
}
