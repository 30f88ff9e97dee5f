import GoFetchEvents

/// Which users reported each file: opened it, announced it in a lookahead, or had its
/// folder listed as them. The learned state (Markov table, remaining set, data-set
/// tree) is shared by every client of a daemon, so a prediction made on one client's
/// open may name a file another client's events put there; the engine sends a
/// prediction to be opened as a client only for files that client reported. One
/// client's events then never choose what is opened with another's identity.
///
/// Most files have one user: kept inline; up to ``maxUsersPerFile`` in all, later
/// users of a file are refused (counted in ``overflowed``): bounded by the catalog.
struct FileReporters {
    static let maxUsersPerFile = 8
    private var first: [FileID: UInt32] = [:]
    private var others: [FileID: [UInt32]] = [:]
    /// Reports not kept because a file had ``maxUsersPerFile`` users already.
    private(set) var overflowed = 0
    /// Counts the (file, user) pairs added: unchanged, no file has become eligible for anyone.
    private(set) var version = 0

    mutating func add(_ file: FileID, uid: UInt32) {
        guard let known = first[file] else {
            first[file] = uid
            version += 1
            return
        }
        guard known != uid else { return }
        let more = others[file]?.count ?? 0
        guard others[file]?.contains(uid) != true else { return }
        guard more + 1 < Self.maxUsersPerFile else {
            overflowed += 1
            return
        }
        others[file, default: []].append(uid)  // in place
        version += 1
    }

    /// Adds `uid` as a reporter of every file `from` reported (the first client of a run
    /// takes over what was listed as ``PrefetchEngine/anyone`` before it came).
    mutating func adopt(from: UInt32, to uid: UInt32) {
        for (file, known) in first where known == from { add(file, uid: uid) }
        for (file, users) in others where users.contains(from) { add(file, uid: uid) }
    }

    func contains(_ file: FileID, uid: UInt32) -> Bool {
        guard let known = first[file] else { return false }
        return known == uid || others[file]?.contains(uid) == true
    }
}
