import Foundation
import Glibc
import GoFetchConfig
import GoFetchSystem
import Logging
import Prometheus
import Synchronization
import SystemPackage

/// Serves the Prometheus text exposition of a registry over HTTP/1.0 on one thread:
/// each connection gets the current figures and is closed. Slow or silent clients
/// are cut after a second, so a scraper can never hold the daemon.
public final class PrometheusServer: @unchecked Sendable {
    public let address: ListenAddress
    /// The bound port (useful when asked for port 0).
    public private(set) var port: UInt16 = 0
    private let registry: PrometheusCollectorRegistry
    private let beforeScrape: @Sendable () -> Void
    private let logger: Logger
    private var socket: FileDescriptor?
    private let stopping = Atomic<Bool>(false)
    private var thread: JoinableThread?

    /// - Parameter beforeScrape: refreshes the registry's values before each answer.
    public init(address: ListenAddress, registry: PrometheusCollectorRegistry, logger: Logger, beforeScrape: @escaping @Sendable () -> Void) {
        self.address = address
        self.registry = registry
        self.logger = logger
        self.beforeScrape = beforeScrape
    }

    public func start() throws(Errno) {
        let fd: FileDescriptor
        switch address {
        case .tcp(let host, let requestedPort, let ipv6):
            fd = try Syscall.socket(domain: ipv6 ? AF_INET6 : AF_INET, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            do {
                try Syscall.setSocketOption(fd, level: SOL_SOCKET, option: SO_REUSEADDR, value: 1)
                try Syscall.bind(fd, host: host, port: requestedPort, ipv6: ipv6)
                port = try Syscall.boundPort(fd)
            } catch {
                try? fd.close()
                throw error
            }
        case .unix(let path):
            fd = try Syscall.socket(domain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            do {
                try Syscall.unlinkIfPresent(path)
                try Syscall.bind(fd, unixPath: path)
            } catch {
                try? fd.close()
                throw error
            }
        }
        do {
            try Syscall.listen(fd, backlog: 16)
        } catch {
            try? fd.close()
            throw error
        }
        socket = fd
        thread = JoinableThread(name: "gofetch-metrics") { [self] in serve(fd) }
    }

    public func stop() {
        guard let fd = socket else { return }
        socket = nil
        stopping.store(true, ordering: .relaxed)
        Syscall.shutdown(fd)
        thread?.join()
        try? fd.close()
        if case .unix(let path) = address { try? Syscall.unlinkIfPresent(path) }
    }

    private func serve(_ listener: FileDescriptor) {
        while !stopping.load(ordering: .relaxed) {
            let client: FileDescriptor?
            do {
                client = try Syscall.accept(listener)
            } catch {
                if stopping.load(ordering: .relaxed) { return }
                // Out of descriptors or buffers: a scrape is lost, the server is not.
                logger.warning("metrics: accept failed; retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 0.1)
                continue
            }
            guard let client else { continue }
            answer(client)
            try? client.close()
        }
    }

    /// Reads the request and writes the figures, all within one second: a slow or
    /// silent client is cut, so the single server thread is never held.
    private func answer(_ client: FileDescriptor) {
        let deadline = Clock.monotonicNanoseconds() + 1_000_000_000
        func remainingMilliseconds() -> Int32 {
            let now = Clock.monotonicNanoseconds()
            return now >= deadline ? 0 : Int32((deadline - now) / 1_000_000)
        }
        // The request is read (its path ignored: every path answers the metrics).
        var request = [UInt8](repeating: 0, count: 4_096)
        var received = 0
        while received < request.count {
            guard remainingMilliseconds() > 0, (try? Syscall.wait(client, output: false, timeoutMilliseconds: remainingMilliseconds())) == true else { return }
            let count: Int
            do {
                count = try request.withUnsafeMutableBytes { try client.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[received...])) }
            } catch {
                return  // reset by the peer: nobody to answer
            }
            if count == 0 { break }
            received += count
            if request[..<received].windowsContain([13, 10, 13, 10]) || request[..<received].windowsContain([10, 10]) { break }
        }
        beforeScrape()
        let body = registry.emitToBuffer()
        let head = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var response = Array(head.utf8)
        response.append(contentsOf: body)
        var sent = 0
        while sent < response.count {
            guard remainingMilliseconds() > 0, (try? Syscall.wait(client, output: true, timeoutMilliseconds: remainingMilliseconds())) == true else { return }
            guard let count = try? response.withUnsafeBytes({ bytes throws(Errno) in try Syscall.sendSome(client, UnsafeRawBufferPointer(rebasing: bytes[sent...])) }) else { return }
            sent += count
        }
    }
}

extension ArraySlice where Element == UInt8 {
    fileprivate func windowsContain(_ pattern: [UInt8]) -> Bool {
        guard count >= pattern.count else { return false }
        var index = startIndex
        while index + pattern.count <= endIndex {
            if self[index..<(index + pattern.count)].elementsEqual(pattern) { return true }
            index += 1
        }
        return false
    }
}
