import GoFetchSystem
import Logging
import SystemPackage

/// `gofetch cache`: how much of some files and folders is in the page cache, and
/// loading or dropping them, one file at a time.
///
/// Folders are walked depth first with a `FileTreeWalker`, so memory stays bounded
/// however many files there are. Pages are counted with cachestat (mincore on
/// kernels without it). Warming goes through the executor's `PageCacheWarmer`;
/// evicting is `posix_fadvise(POSIX_FADV_DONTNEED)`. Residency is measured again
/// after either, so what is reported is what happened. A file or folder that cannot
/// be read is reported and counted; the run goes on.
public final class PageCacheTool {
    public enum Action: Sendable, Equatable {
        /// Count resident pages only.
        case count
        /// Load files with `method` (`nil` chooses per device, as the executor does),
        /// until `budget` bytes became resident (`nil`: no limit).
        case warm(method: PrefetchMethod?, budget: UInt64?)
        /// Drop the files' clean pages.
        case evict

        var name: String {
            switch self {
            case .count: "count"
            case .warm: "warm"
            case .evict: "evict"
            }
        }
    }

    public let action: Action
    private let walker: FileTreeWalker
    private let warmer: PageCacheWarmer?
    /// Files warmed at once (``WarmingPool``): network and FUSE storage serve many
    /// requests together, and a read waits for its answer.
    public let concurrency: Int

    /// - Parameters:
    ///   - followSymlinks: follow symbolic links found below the given paths (the given
    ///     paths themselves are always followed).
    ///   - concurrency: files warmed at once (`prefetcher.executor_threads`).
    public init(action: Action, followSymlinks: Bool = false, concurrency: Int = 1, logger: Logger) {
        self.action = action
        self.concurrency = max(1, concurrency)
        walker = FileTreeWalker(followSymlinks: followSymlinks)
        if case .warm(let method, _) = action {
            warmer = PageCacheWarmer(method: method, logger: logger)
        } else {
            warmer = nil
        }
    }

    /// Goes through `paths` in order: files, and folders with everything below them.
    /// - Parameters:
    ///   - onFile: called after each file with its pages.
    ///   - onProblem: called for each path or entry that could not be read.
    /// - Returns: the totals.
    public func run(
        _ paths: [String], onFile: (CachedFile) -> Void = { _ in }, onProblem: (PageCacheProblem) -> Void = { _ in }
    ) -> PageCacheTotals {
        let started = Clock.monotonicNanoseconds()
        var totals = PageCacheTotals(action: action.name, pageSize: Syscall.pageSize)
        if case .warm(_, let budget) = action { totals.warming = .init(budgetBytes: budget) }
        // The read buffer of warming with one thread (the pool's threads have their own).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: warmer != nil && concurrency == 1 ? 1 << 20 : 0, alignment: 4096)
        defer { buffer.deallocate() }
        // Warming: each file is planned (and the budget reserved) here, in walk order, then
        // loaded here (one thread) or by the pool, and reported in walk order.
        let pool = warmer.flatMap { warmer in concurrency > 1 ? WarmingPool(warmer: warmer, threads: concurrency) : nil }
        var reserved: UInt64 = 0
        func report(_ done: [WarmingPool.Done]) {
            for item in done {
                reserved -= min(reserved, item.plan.reserved)
                if let error = item.error {
                    totals.unreadable += 1
                    onProblem(PageCacheProblem(path: item.file.path, error: error, isGivenPath: false))
                    continue
                }
                var file = item.file
                if let warming = item.warming {
                    file.method = warming.method
                    file.resident = warming.residentAfter
                    totals.warming?.files[warming.method.rawValue, default: 0] += 1
                    totals.warming?.loadedBytes += (file.resident - min(file.resident, item.before)) * Syscall.pageSize
                }
                if item.plan.limited && file.resident < file.pages {
                    totals.warming?.leftFiles += 1
                    totals.warming?.leftBytes += (file.pages - file.resident) * Syscall.pageSize
                }
                totals.add(file)
                onFile(file)
            }
        }
        for path in paths {
            walker.walk(path) { event in
                switch event {
                case .directory:
                    totals.directories += 1
                case .skipped:
                    totals.skipped += 1
                case .failed(let path, let error, let isRoot):
                    if isRoot { totals.failedPaths += 1 } else { totals.unreadable += 1 }
                    onProblem(PageCacheProblem(path: path, error: error, isGivenPath: isRoot))
                case .file(let path, let fd, let status):
                    do throws(Errno) {
                        guard let warmer else {
                            let file = try countOrEvict(fd, status: status, path: path)
                            totals.add(file)
                            onFile(file)
                            return
                        }
                        let (file, plan) = try planWarming(fd, status: status, path: path, budget: totals.warming?.budgetBytes,
                                                           committed: (totals.warming?.loadedBytes ?? 0) + reserved)
                        let planned = WarmingPool.Done(file: file, plan: plan, before: file.resident)
                        reserved += plan.reserved
                        if let pool {
                            report(try pool.submit(fd, status: status, planned: planned))
                        } else {
                            report([WarmingPool.load(planned, fd: fd, status: status, warmer: warmer, buffer: buffer)])
                        }
                    } catch {
                        totals.unreadable += 1
                        onProblem(PageCacheProblem(path: path, error: error, isGivenPath: false))
                    }
                }
            }
        }
        if let pool { report(pool.finish()) }
        totals.elapsedNanoseconds = Clock.monotonicNanoseconds() - started
        return totals
    }

    /// What warming one file will do: its pages before, how many bytes from its start
    /// to load (0: nothing), whether the budget cut it, and the bytes it may add.
    struct WarmingPlan {
        var length: UInt64
        var rangeBefore: UInt64
        var limited: Bool
        var reserved: UInt64
    }

    /// Plans one file's warming against the budget: `committed` is what was loaded and
    /// what the files in flight may still load.
    private func planWarming(
        _ fd: FileDescriptor, status: FileStatus, path: String, budget: UInt64?, committed: UInt64
    ) throws(Errno) -> (CachedFile, WarmingPlan) {
        let page = Syscall.pageSize
        let pages = (status.size + page - 1) / page
        let before = try status.size == 0 ? 0 : Syscall.residentPages(fd, offset: 0, length: status.size)
        var file = CachedFile(path: path, size: status.size, pages: pages, resident: before)
        file.residentBefore = before
        guard before < pages else { return (file, WarmingPlan(length: 0, rangeBefore: before, limited: false, reserved: 0)) }
        let left = budget.map { $0 - min($0, committed) }
        var length = status.size
        let limited = left.map { (pages - before) * page > $0 } ?? false
        if limited, let left {
            // The budget's last file: only as many of its first pages as the budget holds,
            // and no readahead beyond them.
            length = left / page * page
            if length > 0 { try Syscall.adviseRandom(fd) }
        }
        let rangeBefore = try length == status.size || length == 0 ? before : Syscall.residentPages(fd, offset: 0, length: length)
        let reserved = length == status.size ? (pages - before) * page : length
        return (file, WarmingPlan(length: length, rangeBefore: rangeBefore, limited: limited, reserved: reserved))
    }

    /// Counts or evicts one open file (warming is planned and loaded above).
    private func countOrEvict(_ fd: FileDescriptor, status: FileStatus, path: String) throws(Errno) -> CachedFile {
        let page = Syscall.pageSize
        let pages = (status.size + page - 1) / page
        func resident() throws(Errno) -> UInt64 {
            try status.size == 0 ? 0 : Syscall.residentPages(fd, offset: 0, length: status.size)
        }
        var file = CachedFile(path: path, size: status.size, pages: pages, resident: try resident())
        if case .evict = action {
            file.residentBefore = file.resident
            if file.resident > 0 {
                try Syscall.adviseDontNeed(fd, offset: 0, length: 0)
                file.resident = try resident()
            }
        }
        return file
    }
}
