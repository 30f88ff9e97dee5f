import CGoFetchLinux
import Foundation

/// A named thread of gofetch's own (ingest, store, engine, I/O, metrics…): it runs
/// `body` once, and ``join()`` waits until `body` has returned.
package final class JoinableThread: Sendable {
    private let finished = DispatchSemaphore(value: 0)

    package init(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [finished] in
            // The kernel's name too (top -H, perf, /proc/PID/task/TID/comm): at most 15 bytes.
            CGoFetch_set_thread_name(name)
            body()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Waits for `body` to return (once).
    package func join() {
        finished.wait()
    }

    /// Waits for `body` to return until `deadline`; `false` if it has not by then
    /// (a later ``join()`` still waits for it).
    package func join(until deadline: DispatchTime) -> Bool {
        finished.wait(timeout: deadline) == .success
    }
}
