import ArgumentParser
import Foundation
import GoFetchRuntime

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "What this machine supports for each trace source and for warming, and the fix for what is missing.",
        discussion: """
            Checks for real: root, the kernel, the preload shim and the Python client,
            cachestat(2), BTF and the eBPF program, fanotify, FUSE, the memory cgroup
            and its limit, memory pressure (PSI), and with a PATH the storage holding
            a data set (FUSE or network, or a block device's read_ahead_kb).
            Exits 1 when something gofetch needs by default is missing.

            Example: gofetch doctor /data/imagenet
            """
    )

    @OptionGroup var options: CommonOptions

    @Flag(help: "Print the findings as JSON.")
    var json = false

    @Argument(help: ArgumentHelp("A data set's folder or file, to check the storage it is on.", valueName: "path"))
    var path: String?

    func run() throws {
        let configuration = try options.loadConfiguration()
        let checks = MachineCheck.all(dataPath: path, configuration: configuration)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(checks), as: UTF8.self))
        } else {
            for check in checks {
                let mark = check.status == .ok ? "ok     " : check.status == .missing ? "MISSING" : "note   "
                print("\(mark) \(check.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(check.found)")
                if !check.fix.isEmpty { print("        \(String(repeating: " ", count: 16)) fix: \(check.fix)") }
            }
        }
        // What the default path needs: the shim and cachestat.
        if checks.contains(where: { $0.status == .missing && ($0.name == "preload shim" || $0.name == "cachestat") }) {
            throw ExitCode(1)
        }
    }
}
