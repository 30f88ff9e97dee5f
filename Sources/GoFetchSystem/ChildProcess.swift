import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

public struct ChildProcess: Sendable {
    public let pid: pid_t

    /// Starts `arguments` (the first is looked up on `PATH`).
    public static func spawn(_ arguments: [String], environment: [String: String]) throws(ChildProcessError) -> ChildProcess {
        guard let command = arguments.first else { throw ChildProcessError(command: "", problem: "no command given") }
        do {
            return ChildProcess(pid: try Syscall.spawn(arguments, environment: environment))
        } catch {
            throw ChildProcessError(command: command, problem: error == .noSuchFileOrDirectory ? "command not found" : "\(error)")
        }
    }

    /// Sends a signal (forwarding the one gofetch received).
    public func signal(_ number: Int32) { kill(pid, number) }

    /// Waits on a dedicated thread, so no task of the concurrency pool blocks.
    public func exitCode() async -> Int32 {
        await withCheckedContinuation { continuation in
            let thread = Thread { [pid] in
                continuation.resume(returning: (try? Syscall.waitForExit(pid)) ?? 1)
            }
            thread.name = "gofetch-wait"
            thread.start()
        }
    }
}

public struct ChildProcessError: Error, CustomStringConvertible, Sendable {
    public var command: String
    public var problem: String
    public var description: String { "cannot run '\(command)': \(problem)" }
}
