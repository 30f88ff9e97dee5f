import Foundation
import GoFetchEvents
import SystemPackage

/// One file's pages in the page cache, as `gofetch cache` reports it.
public struct CachedFile: Sendable, Codable, Equatable {
    public var path: String
    public var size: UInt64
    /// Pages the file spans: its size rounded up to whole pages.
    public var pages: UInt64
    /// Resident pages at the end, after warming or evicting.
    public var resident: UInt64
    /// Resident pages before warming or evicting; `nil` when only counting.
    public var residentBefore: UInt64?
    /// How pages were loaded; `nil` when none were asked for (already resident, budget
    /// spent, or not warming).
    public var method: PrefetchMethod?

    /// One line: resident pages / pages, percent, path (`before → after/pages` when
    /// warming or evicting).
    public func render() -> String {
        let before = residentBefore.map { Self.column($0) + " → " } ?? ""
        let percent = pages == 0 ? "     -" : Self.column(Format.fixed(Double(resident) * 100 / Double(pages), 1) + "%", 6)
        return "\(before)\(Self.column(resident))/\(String(pages).padding(toLength: 10, withPad: " ", startingAt: 0)) \(percent)  \(path)"
    }

    static func column<T: CustomStringConvertible>(_ value: T, _ width: Int = 10) -> String {
        let text = value.description
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}

/// Everything `gofetch cache` went through, summed: what vmtouch prints at the end.
public struct PageCacheTotals: Sendable, Codable, Equatable {
    /// `count`, `warm` or `evict`.
    public var action: String
    public var files = 0
    public var directories = 0
    /// Symbolic links not followed, links leading back into the walk, devices, sockets
    /// and pipes: never opened.
    public var skipped = 0
    /// Entries below the given paths that could not be read (each named on standard error).
    public var unreadable = 0
    /// Given paths that do not exist or could not be read.
    public var failedPaths = 0
    /// The files' sizes, summed.
    public var bytes: UInt64 = 0
    public var pages: UInt64 = 0
    /// Resident pages at the end.
    public var resident: UInt64 = 0
    /// Resident pages before warming or evicting; `nil` when only counting.
    public var residentBefore: UInt64?
    public var pageSize: UInt64
    /// What warming did; `nil` unless warming.
    public var warming: WarmingTotals?
    public var elapsedNanoseconds: UInt64 = 0

    /// What `--warm` loaded and what its budget left out.
    public struct WarmingTotals: Sendable, Codable, Equatable {
        /// Files pages were loaded of, by method.
        public var files: [String: Int] = [:]
        /// Pages that became resident while warming, in bytes (measured, not asked for).
        public var loadedBytes: UInt64 = 0
        public var budgetBytes: UInt64?
        /// Files the budget left wholly or partly out, and their bytes still not resident.
        public var leftFiles = 0
        public var leftBytes: UInt64 = 0
    }

    /// Whether any path or entry could not be read.
    public var hadProblems: Bool { unreadable + failedPaths > 0 }

    mutating func add(_ file: CachedFile) {
        files += 1
        bytes += file.size
        pages += file.pages
        resident += file.resident
        if let before = file.residentBefore { residentBefore = (residentBefore ?? 0) + before }
    }

    /// The closing lines, labelled as vmtouch labels them.
    public func render() -> String {
        var lines: [String] = []
        func row(_ label: String, _ value: String) { lines.append("\(CachedFile.column(label, 16)): \(value)") }
        func residency(_ resident: UInt64) -> String {
            let percent = pages == 0 ? "-" : Format.fixed(Double(resident) * 100 / Double(pages), 1) + "%"
            return "\(resident)/\(pages)  \(Format.bytes(resident * pageSize))/\(Format.bytes(pages * pageSize))  \(percent)"
        }
        row("Files", "\(files)")
        row("Directories", "\(directories)")
        if skipped > 0 { row("Skipped", "\(skipped) (symbolic links, devices, sockets, pipes)") }
        if hadProblems {
            let given = failedPaths > 0 ? ["\(failedPaths) of the given paths"] : []
            let below = unreadable > 0 ? ["\(unreadable) entries below them"] : []
            row("Unreadable", (given + below).joined(separator: ", ") + " (named on standard error)")
        }
        if let residentBefore { row(action == "evict" ? "Before Evicting" : "Before Warming", residency(residentBefore)) }
        row("Resident Pages", residency(resident))
        if let warming {
            let methods = warming.files.sorted { $0.key < $1.key }.map { "\($0.value) by \($0.key)" }.joined(separator: ", ")
            let files = warming.files.values.reduce(0, +)
            let budget = warming.budgetBytes.map { " of a \(Format.bytes($0)) budget" } ?? ""
            row("Loaded", "\(Format.bytes(warming.loadedBytes))\(budget) into \(files) files" + (methods.isEmpty ? "" : " (\(methods))"))
            if warming.leftFiles > 0 {
                row("Left", "\(warming.leftFiles) files, \(Format.bytes(warming.leftBytes)) not resident: the budget ran out")
            }
        }
        row("Elapsed", Format.duration(nanoseconds: elapsedNanoseconds))
        return lines.joined(separator: "\n")
    }
}

/// A path `gofetch cache` could not read; the run goes on without it.
public struct PageCacheProblem: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var error: Errno
    /// The path was given on the command line (rather than found below one).
    public var isGivenPath: Bool

    public var description: String { "\(path): \(error)" }
}
