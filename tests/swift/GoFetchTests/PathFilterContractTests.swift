import Foundation
@testable import GoFetchConfig
@testable import GoFetchTraceSources
import Testing

/// The include/exclude rule exists in C (the shim), Swift (the kernel sources) and
/// Python (the client): all three run `tests/contracts/path-filter.json`.
@Suite("path filter contract")
struct PathFilterContractTests {
    struct Table: Decodable {
        struct Case: Decodable {
            var include: [String]
            var exclude: [String]
            var path: String
            var wanted: Bool
        }
        var cases: [Case]
    }

    @Test("the kernel sources' filter decides every case of the shared table as the shim and the client do")
    func sharedTable() throws {
        let table = try contractTable("path-filter.json", as: Table.self)
        #expect(table.cases.count >= 15)
        let root = "/scratch/root"
        func fill(_ text: String) -> String { text.replacingOccurrences(of: "{root}", with: root) }
        for item in table.cases {
            let filter = TracePathFilter(include: item.include.map(fill), exclude: item.exclude.map(fill))
            #expect(filter.admits(fill(item.path)) == item.wanted, "include \(item.include) exclude \(item.exclude) path \(item.path)")
        }
        // The bug this table came from: an include under a default exclude traced nothing.
        let defaults = TracePathFilter(include: ["/usr/share/data"], exclude: Configuration().trace.excludePrefixes)
        #expect(defaults.admits("/usr/share/data/train/0001.jpg"))
        #expect(!defaults.admits("/usr/share/doc/readme"))
    }
}
