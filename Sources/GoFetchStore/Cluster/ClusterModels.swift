import Foundation
import GoFetchConfig
import Logging
import NIOCore
import PostgresNIO

/// Models fitted on the cluster's runs, kept in its store (table `models`) so that a
/// daemon on a node that has none starts from them: `gofetch train` reading the
/// cluster's store puts the file it saved there under the model's name (`markov`,
/// `gru`); a daemon with `storage.url` whose model file is missing fetches it.
public enum ClusterModels {
    /// Files larger than this are not kept in the store.
    public static let maxBytes = 256 << 20

    public static func put(_ address: ClusterStoreAddress, name: String, file: String, logger: Logger) throws(ClusterStoreError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw ClusterStoreError(address: address.description, problem: "reading the model \(file): \(error)")
        }
        guard data.count <= maxBytes else {
            throw ClusterStoreError(address: address.description, problem: "the model \(file) is \(data.count) bytes; at most \(maxBytes) are kept")
        }
        let connection = try ClusterConnection.connect(address, logger: logger)
        defer { connection.close() }
        try ClusterSchema.ensure(on: connection)
        let bytes = ByteBuffer(bytes: data)
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        try connection.execute("""
            INSERT INTO models (name, data, saved_ns) VALUES (\(name), \(bytes), \(now))
            ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data, saved_ns = EXCLUDED.saved_ns
            """)
    }

    /// Writes each of the cluster's models the store has to its file (atomically), over
    /// one connection; returns the names written.
    public static func fetch(_ address: ClusterStoreAddress, models: [(name: String, file: String)], logger: Logger) throws(ClusterStoreError) -> [String] {
        guard !models.isEmpty else { return [] }
        let connection = try ClusterConnection.connect(address, logger: logger)
        defer { connection.close() }
        let exists = try connection.rows("SELECT to_regclass('public.models') IS NOT NULL") { try $0.decode(Bool.self) }
        guard exists.first == true else { return [] }
        var written: [String] = []
        for (name, file) in models {
            let found = try connection.rows("SELECT data FROM models WHERE name = \(name)") { try $0.decode(ByteBuffer.self) }
            guard var bytes = found.first, let data = bytes.readData(length: bytes.readableBytes) else { continue }
            do {
                let folder = (file as NSString).deletingLastPathComponent
                if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
                try data.write(to: URL(fileURLWithPath: file), options: .atomic)
            } catch {
                throw ClusterStoreError(address: address.description, problem: "writing the model to \(file): \(error)")
            }
            written.append(name)
        }
        return written
    }
}
