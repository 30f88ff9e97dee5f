import CGoFetchLinux
import Foundation
import Glibc
@testable import GoFetchConfig
@testable import GoFetchIngest
import Logging
import SystemPackage

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

typealias TestClient = IngestClient

extension Logger {
    static let test: Logger = {
        var logger = Logger(label: "gofetch.test")
        logger.logLevel = .error
        return logger
    }()
}

/// A configuration whose store and socket live in `directory`.
/// A table of `tests/contracts/` that the C, Swift and Python tests all run.
func contractTable<Table: Decodable>(_ name: String, as type: Table.Type) throws -> Table {
    let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try JSONDecoder().decode(type, from: Data(contentsOf: tests.appendingPathComponent("contracts/\(name)")))
}

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
