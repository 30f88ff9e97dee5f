import Foundation
import GoFetchEvents

extension MarkovPredictor {
    private static let magic: [UInt8] = Array("GFMK".utf8)
    private static let version: UInt32 = 1

    /// Saves the transition table. Files are written by path, so the model can be
    /// loaded against another store whose file ids differ.
    public func save(to path: String, pathOf: (FileID) -> String?) throws(ModelFileError) {
        var writer = ByteWriter()
        writer.bytes(Self.magic)
        writer.u32(Self.version)
        writer.u32(UInt32(options.maxOrder))
        var files: [FileID: String] = [:]
        for (context, entry) in table {
            for id in [context.first, context.second, context.third] + entry.successors.map(\.file) where id != 0 && files[id] == nil {
                files[id] = pathOf(id)
            }
        }
        writer.u64(UInt64(files.count))
        for (id, filePath) in files {
            writer.i64(id)
            writer.string(filePath)
        }
        writer.u64(UInt64(table.count))
        for (context, entry) in table {
            writer.i64(context.first)
            writer.i64(context.second)
            writer.i64(context.third)
            writer.u32(entry.total)
            writer.u64(UInt64(entry.successors.count))
            for successor in entry.successors {
                writer.i64(successor.file)
                writer.u32(successor.count)
            }
        }
        try ModelFileError.write(writer.data, to: path)
    }

    /// Loads a saved model, mapping its files to this store's ids by path. Contexts
    /// that name a file `idOf` does not know are skipped; the count is returned.
    @discardableResult
    public func load(from path: String, idOf: (String) -> FileID?) throws(ModelFileError) -> (contexts: Int, skipped: Int) {
        try load(bytes: try ModelFileError.read(path), readFrom: path, idOf: idOf)
    }

    /// Loads a model already read from `path` (several predictors from one read).
    @discardableResult
    public func load(bytes: [UInt8], readFrom path: String, idOf: (String) -> FileID?) throws(ModelFileError) -> (contexts: Int, skipped: Int) {
        var reader = ByteReader(bytes)
        do {
            guard try reader.bytes(4) == Self.magic else { throw ModelFileError(path: path, problem: "not a gofetch Markov model") }
            let version = try reader.u32()
            guard version == Self.version else { throw ModelFileError(path: path, problem: "model version \(version); this gofetch reads \(Self.version)") }
            _ = try reader.u32()  // order it was trained with; this predictor keeps its own
            var ids: [FileID: FileID] = [:]
            for _ in 0..<(try reader.count(limit: 1 << 32)) {
                let old = try reader.i64()
                if let new = idOf(try reader.string()) { ids[old] = new }
            }
            var loaded = 0, skipped = 0
            for _ in 0..<(try reader.count(limit: 1 << 32)) {
                let raw = [try reader.i64(), try reader.i64(), try reader.i64()]
                let total = try reader.u32()
                var successors: [Successor] = []
                for _ in 0..<(try reader.count(limit: 1 << 16)) {
                    let file = try reader.i64()
                    let count = try reader.u32()
                    if let id = ids[file] { successors.append(Successor(file: id, count: count)) }
                }
                let mapped = raw.map { $0 == 0 ? 0 : ids[$0] }
                guard mapped.allSatisfy({ $0 != nil }), !successors.isEmpty, table.count < options.maxContexts else {
                    skipped += 1
                    continue
                }
                let context = Context(first: mapped[0]!, second: mapped[1]!, third: mapped[2]!)
                let order = context.third != 0 ? 3 : context.second != 0 ? 2 : 1
                guard order <= options.maxOrder else { continue }
                table[context] = Entry(successors: Array(successors.prefix(options.maxSuccessors)), total: max(total, 1), lastUsed: 0)
                loaded += 1
            }
            return (loaded, skipped)
        } catch let error as ModelFileError {
            throw error
        } catch {
            throw ModelFileError(path: path, problem: "truncated or damaged")
        }
    }
}

/// Little-endian writer of model files.
struct ByteWriter {
    var data: [UInt8] = []
    mutating func bytes(_ bytes: [UInt8]) { data += bytes }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { data += $0 } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { data += $0 } }
    mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }
    mutating func string(_ value: String) {
        let utf8 = Array(value.utf8)
        u32(UInt32(utf8.count))
        data += utf8
    }
}

/// Reader of model files that never reads past the end.
struct ByteReader {
    struct Truncated: Error {}
    let data: [UInt8]
    var position = 0

    init(_ data: [UInt8]) { self.data = data }

    mutating func bytes(_ count: Int) throws -> [UInt8] {
        guard count >= 0, position + count <= data.count else { throw Truncated() }
        defer { position += count }
        return Array(data[position..<position + count])
    }
    mutating func u32() throws -> UInt32 {
        let raw = try bytes(4)
        return raw.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }
    mutating func u64() throws -> UInt64 {
        let raw = try bytes(8)
        return raw.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    mutating func string() throws -> String { String(decoding: try bytes(Int(try u32())), as: UTF8.self) }
    /// A count field, checked against a sane limit so damage cannot ask for huge loops.
    mutating func count(limit: UInt64) throws -> Int {
        let value = try u64()
        guard value <= limit else { throw Truncated() }
        return Int(value)
    }
}
