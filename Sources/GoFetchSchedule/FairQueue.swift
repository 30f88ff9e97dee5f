import DequeModule
import GoFetchConfig
import GoFetchExecute
import HeapModule

/// The scheduler's policy queue, one per client user, released in turn: the daemon
/// is shared, and a user whose clients flood it with predictions (or announce
/// millions of files) must not push every other user's requests back. Within a
/// user's queue the policy orders requests (`fifo`: arrival; `heap`: the data-set
/// tree's after every other predictor's, then confidence, then deadline, then
/// arrival; the tree's deadline is its rank, its place in the tree's list); across
/// users each takes one request per turn.
///
/// The tree knows which files the job will read, not when: it fills what the link
/// has left. A predictor that follows what the job reads now (the next bytes of a
/// shard it streams, the next file of its order) names what the job waits for
/// next, and goes ahead of the tree's queue, which holds up to seconds of reads.
///
/// Bounded by `capacity` requests in all: beyond it the user with the most queued
/// loses its least urgent one (the oldest under `fifo`), so a flood evicts its own.
struct FairQueue {
    struct Item: Comparable {
        var request: PrefetchRequest
        var sequence: UInt64

        /// Any predictor's before the data-set tree's, then higher confidence first,
        /// then the earlier deadline, then arrival.
        static func < (a: Item, b: Item) -> Bool {
            let aTree = a.request.predictor == .dataSetTree, bTree = b.request.predictor == .dataSetTree
            if aTree != bTree { return aTree }
            if a.request.confidence != b.request.confidence { return a.request.confidence < b.request.confidence }
            let ad = a.request.deadline ?? .max, bd = b.request.deadline ?? .max
            if ad != bd { return ad > bd }
            return a.sequence > b.sequence
        }

        static func == (a: Item, b: Item) -> Bool { a.sequence == b.sequence }
    }

    private enum Queue {
        case fifo(Deque<Item>)
        case heap(Heap<Item>)

        var count: Int {
            switch self {
            case .fifo(let items): items.count
            case .heap(let items): items.count
            }
        }
    }

    let policy: Configuration.PolicyType
    let capacity: Int
    private var queues: [UInt32: Queue] = [:]
    /// Users with queued requests, in turn order (the next to release first).
    private var turns = Deque<UInt32>()
    private(set) var count = 0
    private var sequence: UInt64 = 0

    init(policy: Configuration.PolicyType, capacity: Int) {
        self.policy = policy
        self.capacity = max(1, capacity)
    }

    /// Queues `request`; `true` when a request was dropped to stay within `capacity`.
    mutating func insert(_ request: PrefetchRequest) -> Bool {
        sequence += 1
        let item = Item(request: request, sequence: sequence)
        let uid = request.uid
        if queues[uid] == nil {
            queues[uid] = policy == .fifo ? .fifo([]) : .heap(Heap())
            turns.append(uid)
        }
        switch policy {
        case .fifo: Self.modifyFIFO(&queues[uid]!) { $0.append(item) }
        case .heap: Self.modifyHeap(&queues[uid]!) { $0.insert(item) }
        }
        count += 1
        guard count > capacity else { return false }
        // The user with the most queued gives up its least urgent request.
        guard let longest = queues.max(by: { $0.value.count < $1.value.count })?.key else { return false }
        switch policy {
        case .fifo: Self.modifyFIFO(&queues[longest]!) { _ = $0.popFirst() }
        case .heap: Self.modifyHeap(&queues[longest]!) { _ = $0.popMin() }
        }
        count -= 1
        removeIfEmpty(longest)
        return true
    }

    /// The request whose turn it is.
    var next: PrefetchRequest? {
        guard let uid = turns.first, let queue = queues[uid] else { return nil }
        switch queue {
        case .fifo(let items): return items.first?.request
        case .heap(let items): return items.max?.request
        }
    }

    /// Users with queued requests.
    var users: Int { turns.count }

    /// Whether `uid` has queued requests.
    func holds(_ uid: UInt32) -> Bool { queues[uid] != nil }

    /// Passes the turn of the user ``next`` belongs to (it cannot be served now).
    mutating func skipTurn() {
        guard let uid = turns.popFirst() else { return }
        turns.append(uid)
    }

    /// Removes the request ``next`` returned; its user goes to the back of the turns.
    mutating func removeNext() {
        guard let uid = turns.popFirst() else { return }
        switch policy {
        case .fifo: Self.modifyFIFO(&queues[uid]!) { _ = $0.popFirst() }
        case .heap: Self.modifyHeap(&queues[uid]!) { _ = $0.popMax() }
        }
        count -= 1
        if queues[uid]!.count == 0 {
            queues[uid] = nil
        } else {
            turns.append(uid)
        }
    }

    /// Removes every queued request `matches`; returns how many.
    mutating func removeAll(where matches: (PrefetchRequest) -> Bool) -> Int {
        var removed = 0
        for uid in Array(queues.keys) {
            switch policy {
            case .fifo: Self.modifyFIFO(&queues[uid]!) { items in
                let before = items.count
                items.removeAll { matches($0.request) }
                removed += before - items.count
            }
            case .heap: Self.modifyHeap(&queues[uid]!) { items in
                let kept = items.unordered.filter { !matches($0.request) }
                removed += items.count - kept.count
                if kept.count < items.count { items = Heap(kept) }
            }
            }
            removeIfEmpty(uid)
        }
        count -= removed
        return removed
    }

    private mutating func removeIfEmpty(_ uid: UInt32) {
        guard queues[uid]?.count == 0 else { return }
        queues[uid] = nil
        turns.removeAll { $0 == uid }
    }

    // In place: taking the collection out of the enum would copy it at each change.
    private static func modifyFIFO(_ queue: inout Queue, _ change: (inout Deque<Item>) -> Void) {
        guard case .fifo(var items) = queue else { return }
        queue = .fifo([])
        change(&items)
        queue = .fifo(items)
    }

    private static func modifyHeap(_ queue: inout Queue, _ change: (inout Heap<Item>) -> Void) {
        guard case .heap(var items) = queue else { return }
        queue = .heap(Heap())
        change(&items)
        queue = .heap(items)
    }
}
