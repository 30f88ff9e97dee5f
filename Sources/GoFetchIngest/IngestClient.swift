import CGoFetchLinux
import Glibc
import GoFetchSystem
import SystemPackage

/// A connection to the ingest socket that sends wire messages, for trace sources
/// written in Swift, the tests and the benchmark. (The preload shim is in C.)
public struct IngestClient: Sendable {
    public let fd: FileDescriptor

    public init(socketPath: String) throws(Errno) {
        let socket = try Syscall.socket(domain: AF_UNIX, type: CGoFetch_SOCK_SEQPACKET | CGoFetch_SOCK_CLOEXEC)
        do throws(Errno) {
            try Syscall.connect(socket, unixPath: socketPath)
        } catch {
            try? socket.close()
            throw error
        }
        fd = socket
    }

    /// Sends one message without waiting; `false` when the socket buffer is full.
    public func trySend(_ message: [UInt8]) throws(Errno) -> Bool {
        let result = message.withUnsafeBytes { bytes in Result { () throws(Errno) in try Syscall.send(fd, bytes) } }
        return try result.get()
    }

    /// Sends one message, polling while the buffer is full. Never use this where
    /// the sender must not wait (a traced job); tests and benchmarks may.
    public func send(_ message: [UInt8]) throws(Errno) {
        while try !trySend(message) { usleep(100) }
    }

    public func close() { try? fd.close() }
}
