import GoFetchPredict
import GoFetchSystem
import GoFetchTraceSources
import SystemPackage

/// The folders a job's command line names, as guesses of its data set, so that
/// `gofetch run` can warm them from the job's start (while it imports its libraries
/// and builds its model), as a user reading the folder ahead of the job would:
///
/// - an argument that is a folder (`/data/imagenet`, `data/`, `--root=/data`);
/// - an absolute folder path written in a small text file the command line names:
///   the script (`root = "/data/imagenet"`), its configuration (YAML, JSON, TOML);
/// - the folder holding most of the absolute paths such a file lists (a list of
///   the data set's files: the deepest folder holding half of them).
///
/// Never a software environment (a virtualenv or conda environment: ``Kind/environment``).
/// Guesses only: the engine drops one the job's opens do not reach
/// (``GoFetchPredict/DataSetTree/noteOpen(path:)``). Never `/`, a folder the trace
/// leaves out (``TracePathFilter``: `trace.exclude_prefixes`, installed packages), the working folder,
/// the home folder or a folder holding either, nor a bare temporary folder (`/tmp`).
/// Of nested folders the outermost is kept. Everything is bounded: files read, bytes
/// read from each, paths looked at, folders returned.
public struct DataSetHints: Sendable {
    public struct Options: Sendable {
        /// Folders returned, at most (the data-set tree's roots are 8 at most).
        public var maxFolders = 8
        /// Text files read, and bytes read from each: a larger file is read up to this.
        public var maxFiles = 16
        public var maxFileBytes = 1 << 20
        /// Paths looked up (each a `stat`, on maybe slow storage), at most.
        public var maxLookups = 256
        /// Paths a file must list for the folder holding half of them to be a guess.
        public var minListed = 8

        public init() {}
    }

    public var options = Options()
    /// The trace's prefixes: a folder it leaves out is not data (and no open would
    /// ever confirm it).
    public var filter: TracePathFilter
    /// The job's working folder and the user's home: they hold the job's code and
    /// output, not only its data.
    public var workingDirectory: String
    public var home: String?

    public init(filter: TracePathFilter, workingDirectory: String, home: String?) {
        self.filter = filter
        self.workingDirectory = workingDirectory
        self.home = home
    }

    /// What a path is, looked up on the file system (following symbolic links).
    public enum Kind: Sendable, Equatable {
        case folder, file(size: UInt64), other
        /// A folder that is a software environment, no data set: a Python virtualenv
        /// (`pyvenv.cfg` at its top) or a conda environment (`conda-meta`). A script or
        /// its notes naming the interpreter's environment would otherwise have its
        /// tens of thousands of files walked and warmed.
        case environment
    }

    /// The folders `arguments` name, in the order named.
    public func folders(in arguments: [String]) -> [String] {
        folders(in: arguments, kind: Self.lookUp, read: { Self.readText($0, limit: options.maxFileBytes) })
    }

    /// The folders `arguments` name, with the file system behind `kind` and `read`.
    public func folders(in arguments: [String], kind: (String) -> Kind, read: (String) -> String?) -> [String] {
        var found: [String] = []
        var seen: Set<String> = []
        var lookups = 0
        var filesRead = 0
        func consider(_ path: String, scan: Bool) {
            // A path from a file's text counts only as a folder: one that may not hold a
            // data set (`#!/usr/bin/env python`, an import under site-packages) is not
            // looked up.
            guard seen.insert(path).inserted, lookups < options.maxLookups, scan || mayHold(path) else { return }
            lookups += 1
            switch kind(path) {
            case .folder:
                if mayHold(path) { found.append(path) }
            case .file(let size):
                guard scan, size > 0, filesRead < options.maxFiles, let text = read(path) else { return }
                filesRead += 1
                let named = Self.absolutePaths(in: text).map { Self.normalized($0, in: workingDirectory) }
                // A list of files: the folder holding half of them first (one lookup).
                let folders = named.map { $0[..<($0.lastIndex(of: "/") ?? $0.startIndex)] }
                if named.count >= options.minListed, let folder = DataSetTree.deepestHolding(folders, atLeast: (named.count + 1) / 2) {
                    consider(folder, scan: false)
                }
                for path in named { consider(path, scan: false) }
            case .other, .environment:
                return
            }
        }
        for argument in arguments {
            for value in Self.values(of: argument) where !value.isEmpty {
                consider(Self.normalized(Self.expandingHome(value, home: home), in: workingDirectory), scan: true)
            }
        }
        // The outermost of nested folders, in the order named.
        let outermost = found.filter { folder in !found.contains { $0 != folder && Self.isUnder(folder, $0) } }
        return Array(outermost.prefix(options.maxFolders))
    }

    /// Whether `folder` may be a data set: not `/`, not left out by the trace (its
    /// files: the trace's rule, installed packages included), not the working folder
    /// or the home folder or one holding either, not a bare temporary folder.
    func mayHold(_ folder: String) -> Bool {
        guard folder != "/", !["/tmp", "/var/tmp", "/dev/shm"].contains(folder), filter.admits(folder + "/") else { return false }
        for held in [workingDirectory, home].compactMap({ $0 }) where Self.isUnder(held, folder) { return false }
        return true
    }

    /// The values an argument may name: itself, what follows `=` in `--name=value`,
    /// and each word of a command string (`sh -c "sleep 1; python train.py /data"`).
    static func values(of argument: String) -> [String] {
        if argument.contains(where: \.isWhitespace) {
            return argument.split(whereSeparator: { $0.isWhitespace || $0 == ";" }).flatMap { values(of: String($0)) }
        }
        guard argument.hasPrefix("-"), let equals = argument.firstIndex(of: "=") else { return [argument] }
        return [String(argument[argument.index(after: equals)...])]
    }

    /// Absolute paths written in `text`: a `/` that starts a word (after a quote, a
    /// space, `=`, `:`, `(`, `[`, `,`) up to the next quote, space or delimiter; not
    /// a URL's `//host/…`.
    static func absolutePaths(in text: String) -> [String] {
        let starts: Set<UInt8> = Set(" \t\r\n\"'`=:([,{".utf8)
        let ends: Set<UInt8> = Set(" \t\r\n\"'`,;)]}#".utf8)
        let bytes = Array(text.utf8)
        var paths: [String] = []
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "/"), index == 0 || starts.contains(bytes[index - 1]) else {
                index += 1
                continue
            }
            var end = index + 1
            while end < bytes.count && !ends.contains(bytes[end]) { end += 1 }
            // Not `//host/…` (a URL).
            if end - index > 1, bytes[index + 1] != UInt8(ascii: "/"), let path = String(validating: bytes[index..<end], as: UTF8.self) { paths.append(path) }
            index = end
        }
        return paths
    }

    /// `~` and `~/…` as the home folder.
    static func expandingHome(_ path: String, home: String?) -> String {
        guard let home, path == "~" || path.hasPrefix("~/") else { return path }
        return home + path.dropFirst()
    }

    /// An absolute path without `.`, `..`, repeated or trailing slashes: as the job
    /// opens it from `workingDirectory` (the trace records paths the same way).
    static func normalized(_ path: String, in workingDirectory: String) -> String {
        let full = path.hasPrefix("/") ? path : workingDirectory + "/" + path
        var parts: [Substring] = []
        for part in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func isUnder(_ path: String, _ folder: String) -> Bool { DataSetTree.isUnder(path[...], folder) }

    static func lookUp(_ path: String) -> Kind {
        guard let status = try? Syscall.fileStatus(path, followSymlinks: true) else { return .other }
        switch status.kind {
        case .directory:
            let marks = ["pyvenv.cfg", "conda-meta"]
            return marks.contains { (try? Syscall.fileStatus(path + "/" + $0, followSymlinks: false)) != nil } ? .environment : .folder
        case .regular: return .file(size: status.size)
        default: return .other
        }
    }

    /// The start of a text file (`nil`: unreadable, or not text: it holds a NUL byte).
    static func readText(_ path: String, limit: Int) -> String? {
        guard let (fd, status) = try? Syscall.openRegularFile(path) else { return nil }
        defer { try? fd.close() }
        let count = Int(min(UInt64(limit), status.size))
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                (try? Syscall.pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), offset: UInt64(done))) ?? 0
            }
            guard got > 0 else { break }
            done += got
        }
        guard !bytes[..<done].contains(0) else { return nil }
        return String(decoding: bytes[..<done], as: UTF8.self)
    }
}
