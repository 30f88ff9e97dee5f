import Foundation
import GoFetchConfig
import GoFetchEvents
import GoFetchExecute
import GoFetchSchedule
import GoFetchSystem
import GoFetchTraceSources
import SystemPackage

/// What this machine supports for each trace source and for warming, checked for
/// real (`gofetch doctor`): each finding says what was found and, where something
/// is missing, the fix.
public struct MachineCheck: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case ok, missing, note }

    public var name: String
    public var status: Status
    public var found: String
    /// What to do about it (empty when nothing is to be done).
    public var fix: String

    /// Every check; `dataPath` adds those of the storage holding a data set.
    public static func all(dataPath: String?, configuration: Configuration) -> [MachineCheck] {
        var checks: [MachineCheck] = []
        let root = geteuid() == 0
        checks.append(root
            ? MachineCheck(name: "root", status: .ok, found: "running as root", fix: "")
            : MachineCheck(name: "root", status: .note, found: "not root (uid \(geteuid()))",
                           fix: "the fanotify and ebpf sources need root; the preload shim and the Python client do not"))
        var kernel = utsname()
        uname(&kernel)
        let release = withUnsafeBytes(of: &kernel.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        checks.append(MachineCheck(name: "kernel", status: .ok, found: "Linux \(release)", fix: ""))

        do {
            let library = try PreloadLibrary.locate(configured: configuration.trace.preloadLibrary)
            checks.append(MachineCheck(name: "preload shim", status: .ok, found: library, fix: ""))
        } catch {
            checks.append(MachineCheck(name: "preload shim", status: .missing, found: "\(PreloadLibrary.fileName) not found",
                                       fix: "build it with scripts/build (make -C preload), or set trace.preload_library"))
        }
        if let client = PythonClient.locate() {
            checks.append(MachineCheck(name: "Python client", status: .ok, found: "\(client) (loaded into Python jobs by gofetch run and gofetch env)", fix: ""))
        } else {
            checks.append(MachineCheck(name: "Python client", status: .missing, found: "the gofetch package and inject/ not found",
                                       fix: "install with scripts/install, or set GOFETCH_PYTHON_CLIENT to the repository's python/ folder"))
        }

        checks.append(cachestat())

        let btf = FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux")
        let object = EBPFSource.locate()
        switch (btf, object, root) {
        case (true, .some(let object), true):
            checks.append(MachineCheck(name: "ebpf source", status: .ok, found: "BTF at /sys/kernel/btf/vmlinux, program \(object)", fix: ""))
        case (false, _, _):
            checks.append(MachineCheck(name: "ebpf source", status: .missing, found: "no /sys/kernel/btf/vmlinux",
                                       fix: "a kernel built with CONFIG_DEBUG_INFO_BTF=y; use --backend preload or fanotify meanwhile"))
        case (true, nil, _):
            checks.append(MachineCheck(name: "ebpf source", status: .missing, found: "BTF present, gofetch.bpf.o not built",
                                       fix: "apt-get install bpftool libbpf-dev, then scripts/build"))
        case (true, .some(let object), false):
            checks.append(MachineCheck(name: "ebpf source", status: .note, found: "BTF present, program \(object); needs root", fix: "run as root for --backend ebpf"))
        }

        if root {
            do {
                let group = try Syscall.fanotifyInit()
                try? group.close()
                checks.append(MachineCheck(name: "fanotify source", status: .ok, found: "fanotify_init works", fix: ""))
            } catch {
                checks.append(MachineCheck(name: "fanotify source", status: .missing, found: "fanotify_init: \(error)",
                                           fix: "a kernel with CONFIG_FANOTIFY=y; in a container, CAP_SYS_ADMIN"))
            }
        } else {
            checks.append(MachineCheck(name: "fanotify source", status: .note, found: "needs root", fix: "run as root for --backend fanotify"))
        }

        checks.append(FileManager.default.fileExists(atPath: "/dev/fuse")
            ? MachineCheck(name: "FUSE", status: .ok, found: "/dev/fuse (the benchmark's slow-storage emulator; FUSE data sets are warmed by reading)", fix: "")
            : MachineCheck(name: "FUSE", status: .note, found: "no /dev/fuse", fix: "bench/run's emulator needs it (modprobe fuse; apt-get install fuse3)"))

        checks.append(memoryCgroup())
        checks.append(FileManager.default.isReadableFile(atPath: "/proc/pressure/memory")
            ? MachineCheck(name: "memory pressure", status: .ok, found: "/proc/pressure/memory (prefetching pauses above prefetcher.memory_pressure_threshold)", fix: "")
            : MachineCheck(name: "memory pressure", status: .note, found: "no PSI (/proc/pressure/memory)", fix: "boot with psi=1 for back-off under memory pressure"))
        if let dataPath { checks.append(storage(of: dataPath)) }
        return checks
    }

    /// cachestat(2), which tells what is resident (the executor's skip and the accounting).
    static func cachestat() -> MachineCheck {
        do {
            let fd = try Syscall.openReadOnly("/proc/self/exe")
            defer { try? fd.close() }
            _ = try Syscall.residentPages(fd, offset: 0, length: 4096)
            return MachineCheck(name: "cachestat", status: .ok, found: "cachestat(2) works", fix: "")
        } catch {
            return MachineCheck(name: "cachestat", status: .missing, found: "cachestat(2): \(error)",
                                fix: "Linux 6.5 or later: gofetch needs it to skip what is resident and to account for its prefetches")
        }
    }

    /// This process's memory cgroup and its limit: the budget follows the job's.
    static func memoryCgroup() -> MachineCheck {
        guard let group = MemoryCgroup.of(pid: UInt32(getpid())) else {
            return MachineCheck(name: "memory cgroup", status: .note, found: "no memory controller found for this process",
                                fix: "mount the cgroup memory controller (v2, or v1 memory) for gofetch's budget to follow a job's limit")
        }
        let (limit, anonymous, activeFile) = group.read()
        let text = limit.map {
            "limit \(Format.bytes(Int(clamping: $0))), \(Format.bytes(Int(clamping: anonymous))) anonymous, \(Format.bytes(Int(clamping: activeFile))) page cache in use"
        } ?? "no limit"
        return MachineCheck(name: "memory cgroup", status: .ok, found: "v\(group.version) \(group.directory): \(text)", fix: "")
    }

    /// The storage holding `path`: its kind, and its readahead window.
    static func storage(of path: String) -> MachineCheck {
        do {
            let fd = try Syscall.openReadOnly(path)
            defer { try? fd.close() }
            let status = try Syscall.fileStatus(fd)
            if Syscall.isRemote(fd) {
                return MachineCheck(name: "data's storage", status: .ok,
                                    found: "\(path): FUSE or a network file system; warmed by reading, as many at once as it answers without queueing", fix: "")
            }
            let window = PageCacheWarmer.readaheadWindow(device: status.device)
            let small = window < 128 * 1024
            return MachineCheck(name: "data's storage", status: small ? .note : .ok,
                                found: "\(path): block device, read_ahead_kb \(window / 1024)",
                                fix: small ? "raise the device's read_ahead_kb (e.g. 128 or more): hints are sliced by it" : "")
        } catch {
            return MachineCheck(name: "data's storage", status: .missing, found: "\(path): \(error)", fix: "give a path this user can read")
        }
    }
}
