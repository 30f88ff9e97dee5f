import ArgumentParser
import Foundation
import GoFetchConfig
import GoFetchStore
import Logging

/// Which of the cluster's runs a reading command takes (with `storage.url`).
struct ClusterFilterOptions: ParsableArguments {
    @Option(help: ArgumentHelp("With storage.url: only runs of this node (storage.node of its daemon).", valueName: "name"))
    var node: String?

    @Option(help: ArgumentHelp("With storage.url: only runs of this job (storage.job of its daemon).", valueName: "name"))
    var job: String?
}

/// The trace store a reading command queries: this machine's, or, when `storage.url`
/// names the cluster's store and `--db` does not name a file, a copy of the cluster's
/// runs (``ClusterSnapshot``) that is deleted when the command ends.
final class ReadingStore {
    let store: TraceStore
    /// What to name in the output: the file, or the cluster's address.
    let name: String
    private let temporaryFolder: String?
    /// The cluster's store, when the runs come from it.
    let cluster: ClusterStoreAddress?

    init(_ configuration: Configuration, options: CommonOptions, filter: ClusterFilterOptions) throws {
        let cluster = options.db == nil ? try configuration.storage.clusterAddress() : nil
        guard let address = cluster else {
            if filter.node != nil || filter.job != nil {
                throw ValidationError("--node and --job filter the cluster's store; storage.url (or --store-url) names none, or --db chose a file")
            }
            store = try TraceStore(path: configuration.storage.dbPath, readOnly: true)
            name = configuration.storage.dbPath
            temporaryFolder = nil
            self.cluster = nil
            return
        }
        let folder = NSTemporaryDirectory() + "gofetch-cluster-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        temporaryFolder = folder
        self.cluster = address
        do {
            let (store, copied) = try ClusterSnapshot.make(
                from: address, filter: .init(node: filter.node, job: filter.job), path: folder + "/traces.db",
                logger: Logger(label: "gofetch.cluster"))
            self.store = store
            FileHandle.standardError.write(Data("cluster store \(address): \(copied.runs) runs, \(copied.events) events, \(copied.files) files\n".utf8))
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
        name = address.description
    }

    /// A model fitted on the cluster's runs goes to its store too, for daemons on nodes without one.
    func share(model: String, file: String) throws {
        guard let cluster else { return }
        try ClusterModels.put(cluster, name: model, file: file, logger: Logger(label: "gofetch.cluster"))
        print("kept in the cluster store as '\(model)' (daemons with storage.url and no model file fetch it)")
    }

    deinit {
        if let temporaryFolder { try? FileManager.default.removeItem(atPath: temporaryFolder) }
    }
}

extension ClusterStoreAddress.Invalid: LocalizedError {
    public var errorDescription: String? { "storage.url: \(description)" }
}
