import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

extension Syscall {
    /// Sleeps for `nanoseconds` (a signal may end it early). The corresponding C function is `nanosleep`.
    package static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = nanosleep(&request, nil)
    }
}

/// Monotonic and wall clocks, and the conversion between them.
public enum Clock {
    /// `CLOCK_MONOTONIC` nanoseconds, the clock the trace sources stamp events with.
    public static func monotonicNanoseconds() -> UInt64 { Syscall.clockNanoseconds(CLOCK_MONOTONIC) }

    /// `CLOCK_REALTIME` nanoseconds since the Unix epoch.
    public static func wallNanoseconds() -> UInt64 { Syscall.clockNanoseconds(CLOCK_REALTIME) }

    /// CPU time of the calling thread.
    public static func threadCPUNanoseconds() -> UInt64 { Syscall.clockNanoseconds(CLOCK_THREAD_CPUTIME_ID) }
}
