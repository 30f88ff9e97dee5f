import CGoFetchLinux
import Foundation
import Glibc
import Logging
import SystemPackage
@testable import GoFetchCore

/// A scratch directory removed at deinit.
final class TemporaryDirectory {
    let path: String

    init() {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("gofetch-test-XXXXXX").path
        var bytes = Array(template.utf8CString)
        path = bytes.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A client of the ingest socket, as a trace source would be.
struct TestClient {
    let fd: FileDescriptor

    init(socketPath: String) throws {
        fd = try Syscall.socket(domain: AF_UNIX, type: CGoFetch_SOCK_SEQPACKET | CGoFetch_SOCK_CLOEXEC)
        try Syscall.connect(fd, unixPath: socketPath)
    }

    /// Sends one message, waiting while the socket buffer is full (a test may wait; the shim never does).
    func send(_ bytes: [UInt8]) throws {
        while try !bytes.withUnsafeBytes({ try Syscall.send(fd, $0) }) {
            usleep(200)
        }
    }

    func close() { try? fd.close() }
}

extension Logger {
    static let test: Logger = {
        var logger = Logger(label: "gofetch.test")
        logger.logLevel = .error
        return logger
    }()
}

/// A configuration whose store and socket live in `directory`.
func testConfiguration(_ directory: TemporaryDirectory) -> Configuration {
    var configuration = Configuration()
    configuration.storage.dbPath = directory.file("traces.db")
    configuration.daemon.socketPath = directory.file("gofetch.sock")
    return configuration
}

/// Polls until `condition` holds or `seconds` pass.
func waitUntil(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { return false }
        usleep(2_000)
    }
    return true
}
