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

    /// - Parameters:
    ///   - followSymlinks: follow symbolic links found below the given paths (the given
    ///     paths themselves are always followed).
    public init(action: Action, followSymlinks: Bool = false, logger: Logger) {
        self.action = action
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
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: warmer == nil ? 0 : 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
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
                        let file = try process(fd, status: status, path: path, warming: &totals.warming, buffer: buffer)
                        totals.add(file)
                        onFile(file)
                    } catch {
                        totals.unreadable += 1
                        onProblem(PageCacheProblem(path: path, error: error, isGivenPath: false))
                    }
                }
            }
        }
        totals.elapsedNanoseconds = Clock.monotonicNanoseconds() - started
        return totals
    }

    /// Counts, warms or evicts one open file.
    private func process(
        _ fd: FileDescriptor, status: FileStatus, path: String, warming: inout PageCacheTotals.WarmingTotals?,
        buffer: UnsafeMutableRawBufferPointer
    ) throws(Errno) -> CachedFile {
        let page = Syscall.pageSize
        let pages = (status.size + page - 1) / page
        func resident() throws(Errno) -> UInt64 {
            try status.size == 0 ? 0 : Syscall.residentPages(fd, offset: 0, length: status.size)
        }
        var file = CachedFile(path: path, size: status.size, pages: pages, resident: try resident())
        switch action {
        case .count:
            break
        case .evict:
            file.residentBefore = file.resident
            if file.resident > 0 {
                try Syscall.adviseDontNeed(fd, offset: 0, length: 0)
                file.resident = try resident()
            }
        case .warm:
            guard let warmer, var totals = warming else { break }
            defer { warming = totals }
            let before = file.resident
            file.residentBefore = before
            guard before < pages else { break }
            let left = totals.budgetBytes.map { $0 - min($0, totals.loadedBytes) }
            var length = status.size
            let limited = left.map { (pages - before) * page > $0 } ?? false
            if limited, let left {
                // The budget's last file: only as many of its first pages as the budget
                // holds, and no readahead beyond them.
                length = left / page * page
                if length > 0 { try Syscall.adviseRandom(fd) }
            }
            if length > 0 {
                let rangeBefore = try length == status.size ? before : Syscall.residentPages(fd, offset: 0, length: length)
                let warmed = try warmer.warm(fd, device: status.device, offset: 0, length: length, residentBefore: rangeBefore, buffer: buffer)
                file.method = warmed.method
                file.resident = try resident()
                totals.files[warmed.method.rawValue, default: 0] += 1
                totals.loadedBytes += (file.resident - min(file.resident, before)) * page
            }
            if limited && file.resident < pages {
                totals.leftFiles += 1
                totals.leftBytes += (pages - file.resident) * page
            }
        }
        return file
    }
}
