import CGoFetchLinux
import Foundation
import Glibc
@testable import GoFetchExecute
@testable import GoFetchSystem
import SystemPackage
import Testing

/// Resident pages of a whole file by mincore(2): a measure independent of the
/// cachestat the tool counts with. mincore counts only pages whose read finished.
func mincorePages(_ path: String) throws -> UInt64 {
    let fd = try FileDescriptor.open(path, .readOnly)
    defer { try? fd.close() }
    let size = try fd.seek(offset: 0, from: .end)
    guard size > 0 else { return 0 }
    let pages = CGoFetch_resident_pages_mincore(fd.rawValue, 0, UInt64(size))
    if pages < 0 { throw Errno(rawValue: errno) }
    return UInt64(pages)
}

/// Reads the first `bytes` of a cold file and nothing ahead of them.
func readStart(_ path: String, bytes: Int) throws {
    let fd = try FileDescriptor.open(path, .readOnly)
    defer { try? fd.close() }
    try Syscall.adviseRandom(fd)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 4096)
    defer { buffer.deallocate() }
    _ = try fd.read(fromAbsoluteOffset: 0, into: buffer)
}

@Suite("page-cache tool", .serialized)
struct PageCacheToolTests {
    func tool(_ action: PageCacheTool.Action, followSymlinks: Bool = false, concurrency: Int = 1) -> PageCacheTool {
        PageCacheTool(action: action, followSymlinks: followSymlinks, concurrency: concurrency, logger: .test)
    }

    /// Runs the tool; returns its files by path, its problems, and its totals.
    func run(_ tool: PageCacheTool, _ paths: [String]) -> (files: [String: CachedFile], problems: [PageCacheProblem], totals: PageCacheTotals) {
        var files: [String: CachedFile] = [:]
        var problems: [PageCacheProblem] = []
        let totals = tool.run(paths, onFile: { files[$0.path] = $0 }, onProblem: { problems.append($0) })
        return (files, problems, totals)
    }

    @Test("a partly resident file counts as many pages as mincore finds")
    func partlyResident() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("half.bin")
        try coldFile(path, size: (1 << 20) + 100)  // 257 pages, the last one partial
        try readStart(path, bytes: 512 << 10)
        let result = run(tool(.count), [path])
        let file = try #require(result.files[path])
        #expect(file.pages == 257)
        #expect(file.resident == 128)
        #expect(file.resident == (try mincorePages(path)))
        #expect(file.residentBefore == nil)
        #expect(result.totals.files == 1 && result.totals.pages == 257 && result.totals.resident == 128)
        #expect(result.totals.bytes == (1 << 20) + 100)
        #expect(!result.totals.hadProblems)
    }

    @Test("warming makes every page resident, with each method, one file at a time or several",
          arguments: [PrefetchMethod?.none, .fadvise, .readahead, .read], [1, 4])
    func warms(method: PrefetchMethod?, concurrency: Int) throws {
        let directory = TemporaryDirectory()
        let paths = [directory.file("a.bin"), directory.file("b.bin")]
        for path in paths { try coldFile(path, size: 3 << 20) }
        let result = run(tool(.warm(method: method, budget: nil), concurrency: concurrency), [directory.path])
        for path in paths {
            let file = try #require(result.files[path])
            #expect(file.residentBefore == 0)
            #expect(file.resident == 768)
            #expect(method == nil || file.method == method)
            // Hints start reads and return: mincore sees each page once its read is done.
            #expect(waitUntil { (try? mincorePages(path)) == 768 })
        }
        #expect(result.totals.residentBefore == 0)
        #expect(result.totals.resident == 1_536)
        #expect(result.totals.warming?.loadedBytes == 6 << 20)
        #expect(result.totals.warming?.files.values.reduce(0, +) == 2)
        #expect(result.totals.warming?.leftFiles == 0)
    }

    @Test("several threads warm files and report them in the walk's order")
    func warmsInOrder() throws {
        let directory = TemporaryDirectory()
        for index in 0..<40 { try coldFile(directory.file("f\(index).bin"), size: (index % 7 + 1) << 14) }
        var walked: [String] = []
        _ = tool(.count).run([directory.path], onFile: { walked.append($0.path) })
        var reported: [String] = []
        let totals = tool(.warm(method: .read, budget: nil), concurrency: 8).run([directory.path], onFile: { reported.append($0.path) })
        #expect(reported == walked)
        #expect(reported.count == 40)
        #expect(totals.resident == totals.pages)
        #expect(try walked.allSatisfy { try residentPages($0) * 4096 >= (try FileManager.default.attributesOfItem(atPath: $0)[.size] as! UInt64) })
    }

    @Test("evicting drops the pages of resident files")
    func evicts() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("warm.bin")
        try warmFile(path, size: 2 << 20)
        #expect(try mincorePages(path) == 512)
        let result = run(tool(.evict), [path])
        let file = try #require(result.files[path])
        #expect(file.residentBefore == 512)
        #expect(file.resident == 0)
        #expect(try mincorePages(path) == 0)
        #expect(try residentPages(path) == 0)
        #expect(result.totals.residentBefore == 512 && result.totals.resident == 0)
    }

    @Test("warming stops at the budget and says what it left, one file at a time or several",
          arguments: [PrefetchMethod.fadvise, .read], [1, 4])
    func budget(method: PrefetchMethod, concurrency: Int) throws {
        let directory = TemporaryDirectory()
        let paths = (0..<4).map { directory.file("f\($0).bin") }
        for path in paths { try coldFile(path, size: 1 << 20) }
        try readStart(paths[1], bytes: 256 << 10)  // 64 pages already resident cost nothing
        let budget: UInt64 = (5 << 20) / 2
        let result = run(tool(.warm(method: method, budget: budget), concurrency: concurrency), paths)
        let warming = try #require(result.totals.warming)
        // 640 pages of budget: 256 for the first file, 192 for the second (64 were
        // resident), the first 192 of the third, none of the fourth. Measured
        // independently, nothing more became resident.
        #expect(try paths.map(residentPages) == [256, 256, 192, 0])
        #expect(warming.loadedBytes == budget)
        #expect(warming.budgetBytes == budget)
        #expect(warming.leftFiles == 2)
        #expect(warming.leftBytes == (64 + 256) << 12)
        #expect(result.files[paths[3]]?.method == nil)
    }

    @Test("the walk counts files, folders, skipped links and unreadable entries, and goes on after a missing path")
    func walk() throws {
        let directory = TemporaryDirectory()
        let root = directory.file("tree")
        let outside = directory.file("outside.bin")
        try coldFile(outside, size: 8192)
        for folder in ["tree/a/b/c", "tree/d"] {
            try FileManager.default.createDirectory(atPath: directory.file(folder), withIntermediateDirectories: true)
        }
        for (name, size) in [("tree/top.bin", 4096), ("tree/a/one.bin", 10_000), ("tree/a/b/c/deep.bin", 1), ("tree/d/empty", 0)] {
            try coldFile(directory.file(name), size: size)
        }
        try FileManager.default.createSymbolicLink(atPath: directory.file("tree/a/out"), withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: directory.file("tree/a/b/up"), withDestinationPath: "../..")
        try FileManager.default.createSymbolicLink(atPath: directory.file("tree/d/dangling"), withDestinationPath: "nowhere")
        #expect(mkfifo(directory.file("tree/d/pipe"), 0o600) == 0)

        let missing = directory.file("no-such-thing")
        let plain = run(tool(.count), [missing, root])
        #expect(plain.totals.files == 4)
        #expect(plain.totals.directories == 5)  // tree, a, b, c, d
        #expect(plain.totals.skipped == 4)  // three links and the pipe, none opened
        #expect(plain.totals.bytes == 4096 + 10_000 + 1)
        #expect(plain.totals.pages == 1 + 3 + 1)
        #expect(plain.totals.failedPaths == 1 && plain.totals.unreadable == 0)
        #expect(plain.problems.map(\.path) == [missing])
        #expect(plain.problems.first?.error == .noSuchFileOrDirectory)
        #expect(plain.problems.first?.isGivenPath == true)
        #expect(Set(plain.files.keys) == Set(["top.bin", "a/one.bin", "a/b/c/deep.bin", "d/empty"].map { "\(root)/\($0)" }))

        // Following links: the file outside counts, the link back up is a loop (skipped),
        // the dangling one is unreadable.
        let followed = run(tool(.count, followSymlinks: true), [root])
        #expect(followed.totals.files == 5)
        #expect(followed.files["\(root)/a/out"]?.size == 8192)
        #expect(followed.totals.skipped == 2)  // the loop and the pipe
        #expect(followed.totals.unreadable == 1)
        #expect(followed.problems.map(\.path) == ["\(root)/d/dangling"])
        #expect(followed.totals.hadProblems)
    }

    @Test("a name that is not UTF-8 is opened by its bytes")
    func bytesName() throws {
        let directory = TemporaryDirectory()
        let name: [CChar] = Array("\(directory.path)/caf".utf8CString.dropLast()) + [CChar(bitPattern: 0xE9), 0]
        let fd = open(name, O_CREAT | O_WRONLY, 0o600)
        #expect(fd >= 0)
        #expect(write(fd, "data", 4) == 4)
        close(fd)
        let result = run(tool(.count), [directory.path])
        #expect(result.problems.isEmpty)
        #expect(result.totals.files == 1 && result.totals.bytes == 4)
        #expect(result.files.keys.first == "\(directory.path)/caf\u{FFFD}")
    }
}
