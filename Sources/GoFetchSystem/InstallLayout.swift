import Foundation

/// Where gofetch's companion files are, found from the running executable.
///
/// The executable is `/proc/self/exe` (not `argv[0]`, which is just `gofetch` after a
/// `PATH` lookup), with symlinks resolved. An installed layout keeps the companions
/// under `<prefix>/lib/gofetch/` beside `<prefix>/bin/gofetch`; a build keeps the
/// shim and the eBPF object next to the executable, and the rest in the source tree
/// (`.build/<triple>/<config>/gofetch` → `<repo>/`).
public enum InstallLayout {
    /// The running executable's folder.
    public static var executableDirectory: URL {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// The places a companion may be, most specific first: next to the executable,
    /// in `../lib/gofetch/`, then `sourcePath` in each of the four folders above the
    /// executable's (the source tree around `.build/`).
    /// - Parameters:
    ///   - name: the companion's name next to the executable and under `lib/gofetch/`.
    ///   - sourcePath: where it is in the source tree, relative to its root.
    public static func candidates(_ name: String, sourcePath: String) -> [String] {
        let directory = executableDirectory
        var candidates = [
            directory.appendingPathComponent(name).path,
            directory.appendingPathComponent("../lib/gofetch/\(name)").standardized.path,
        ]
        var up = directory
        for _ in 0..<4 {
            up = up.deletingLastPathComponent()
            candidates.append(up.appendingPathComponent(sourcePath).path)
        }
        return candidates
    }
}
