import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

extension Syscall {
    /// Starts a program found on `PATH` with `SIGINT`, `SIGTERM` and `SIGPIPE` at their
    /// default actions and no signal blocked, whatever this process set for itself.
    /// The corresponding C function is `posix_spawnp`.
    package static func spawn(_ arguments: [String], environment: [String: String]) throws(Errno) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid = pid_t()
        let result = posix_spawnp(&pid, arguments[0], nil, &attributes, argv, envp)
        guard result == 0 else { throw Errno(rawValue: result) }
        return pid
    }

    /// CPU time this process has used, all its threads (not its children), in
    /// nanoseconds of user and of system time. The corresponding C function is `getrusage`.
    package static func ownCPUTime() -> (user: UInt64, system: UInt64) {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return (0, 0) }
        func nanoseconds(_ time: timeval) -> UInt64 { UInt64(max(0, time.tv_sec)) * 1_000_000_000 + UInt64(max(0, time.tv_usec)) * 1_000 }
        return (nanoseconds(usage.ru_utime), nanoseconds(usage.ru_stime))
    }

    /// Waits for a child; returns its exit code, or 128 + the signal that killed it.
    /// The corresponding C function is `waitpid`.
    package static func waitForExit(_ pid: pid_t) throws(Errno) -> Int32 {
        var status: Int32 = 0
        _ = try valueOrErrno { waitpid(pid, &status, 0) }.get()
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }
}

/// A command gofetch runs and waits for (`trace`, later `run`).
