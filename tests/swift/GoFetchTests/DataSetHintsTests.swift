import Foundation
@testable import GoFetchRuntime
import GoFetchTraceSources
import Testing

@Suite("data-set hints")
struct DataSetHintsTests {
    let hints = DataSetHints(filter: TracePathFilter(include: [], exclude: ["/proc", "/usr", "/etc/"]), workingDirectory: "/home/ana/project", home: "/home/ana")

    /// A file system of `folders` and `files` (path: text).
    func folders(_ arguments: [String], folders: Set<String>, files: [String: String] = [:], with hints: DataSetHints? = nil) -> [String] {
        (hints ?? self.hints).folders(in: arguments, kind: { path in
            folders.contains(path) ? .folder : files[path].map { .file(size: UInt64($0.utf8.count)) } ?? .other
        }, read: { files[$0] })
    }

    @Test("folders named as arguments, as --name=value, relative to the working folder, in a command string; in the order named")
    func arguments() {
        let found = folders(["python", "train.py", "--data=/mnt/imagenet", "-o", "runs", "~/sets/coco", "/mnt/missing"],
                            folders: ["/mnt/imagenet", "/home/ana/project/runs", "/home/ana/sets/coco"])
        #expect(found == ["/mnt/imagenet", "/home/ana/project/runs", "/home/ana/sets/coco"])
        #expect(folders(["sh", "-c", "sleep 2; exec ./reader --root=/mnt/a 3"], folders: ["/mnt/a"]) == ["/mnt/a"])
    }

    @Test("absolute folder paths written in the script and in a configuration file it names")
    func textFiles() {
        let script = """
            import torchvision
            data = torchvision.datasets.ImageFolder("/mnt/nfs/train", transform=t)
            out='/scratch/ckpt' # checkpoints
            """
        let config = #"{"root": "/mnt/nfs/val/", "lr": 0.1, "paths": ["/srv/a/../b"]}"#
        let found = folders(["python", "train.py", "--config", "cfg.json"],
                            folders: ["/mnt/nfs/train", "/scratch/ckpt", "/mnt/nfs/val", "/srv/b"],
                            files: ["/home/ana/project/train.py": script, "/home/ana/project/cfg.json": config])
        #expect(found == ["/mnt/nfs/train", "/scratch/ckpt", "/mnt/nfs/val", "/srv/b"])
    }

    @Test("a list of files gives the folder holding half of them")
    func fileList() {
        let list = (0..<20).map { "/data/set/class_\($0 % 4)/\($0).jpg" }.joined(separator: "\n") + "\n/elsewhere/x.jpg\n"
        let found = folders(["./reader", "list.txt"], folders: ["/data/set", "/data/set/class_0"],
                            files: ["/home/ana/project/list.txt": list])
        // /data/set holds all 20 (its class folders hold 5 each); class_0 is under it.
        #expect(found == ["/data/set"])
    }

    @Test("never /, a left-out prefix, installed packages, the working or home folder or one holding them, a bare /tmp")
    func excluded() {
        let named = ["/", "/usr/share/data", "/etc/x", "/proc", "/opt/venv/lib/python3.11/site-packages/torch",
                     "/home/ana/project", "/home/ana", "/home", ".", "/tmp", "/dev/shm", "/tmp/set"]
        let found = folders(named, folders: Set(named.map { $0 == "." ? "/home/ana/project" : $0 }))
        #expect(found == ["/tmp/set"])
        // The trace's own rule: with include prefixes, only folders it traces (an include
        // beats a shorter exclude, as in the shim).
        let included = DataSetHints(filter: TracePathFilter(include: ["/mnt", "/usr/share/data"], exclude: ["/usr"]),
                                    workingDirectory: "/home/ana/project", home: "/home/ana")
        let traced = ["/srv/set", "/mnt/set", "/usr/share/data", "/usr/share/doc"]
        #expect(folders(traced, folders: Set(traced), with: included) == ["/mnt/set", "/usr/share/data"])
    }

    @Test("of nested folders the outermost; at most 8; a folder named twice once; bounded lookups")
    func bounds() {
        #expect(folders(["/d/a/b", "/d/a", "/d/a/c", "/d/a"], folders: ["/d/a/b", "/d/a", "/d/a/c"]) == ["/d/a"])
        let many = (0..<12).map { "/d\($0)" }
        #expect(folders(many, folders: Set(many)) == Array(many.prefix(8)))
        var limited = hints
        limited.options.maxLookups = 3
        #expect(folders(many, folders: Set(many), with: limited) == Array(many.prefix(3)))
        // Paths in text end at a quote or a space; a URL's // is not one.
        #expect(DataSetHints.absolutePaths(in: "x=/a/b y=\"/c d\" http://host/p") == ["/a/b", "/c"])
    }

    @Test("on the file system: a folder argument and a JSON configuration naming another; a binary file is not read as text; no software environment")
    func realFiles() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("gofetch-hints-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/set/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/val", withIntermediateDirectories: true)
        try Data(#"{"root": "\#(base)/val"}"#.utf8).write(to: URL(fileURLWithPath: base + "/cfg.json"))
        try Data([0x7f, 0x45, 0x4c, 0x46, 0, 0x2f, 0x61]).write(to: URL(fileURLWithPath: base + "/binary"))
        // Software environments, named in the script's notes: a virtualenv and a conda one.
        try FileManager.default.createDirectory(atPath: base + "/venv/lib", withIntermediateDirectories: true)
        try Data("home = /usr/bin\n".utf8).write(to: URL(fileURLWithPath: base + "/venv/pyvenv.cfg"))
        try FileManager.default.createDirectory(atPath: base + "/conda/conda-meta", withIntermediateDirectories: true)
        try Data("# set up: \(base)/venv/bin/pip install torch; conda create -p \(base)/conda\n".utf8)
            .write(to: URL(fileURLWithPath: base + "/notes.md"))
        let hints = DataSetHints(filter: TracePathFilter(include: [], exclude: []), workingDirectory: base, home: nil)
        #expect(hints.folders(in: ["binary", "set", "--config=cfg.json", "missing", "notes.md", "venv"]) == [base + "/set", base + "/val"])
        #expect(DataSetHints.lookUp(base + "/venv") == .environment && DataSetHints.lookUp(base + "/conda") == .environment)
        #expect(DataSetHints.lookUp(base + "/set") == .folder)
        #expect(DataSetHints.readText(base + "/binary", limit: 1 << 20) == nil)
    }
}
