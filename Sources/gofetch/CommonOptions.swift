import ArgumentParser
import GoFetchConfig
import Logging

/// Options every subcommand takes.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("YAML config file (docs/config.md).", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Trace store; overrides storage.db_path.", valueName: "path"))
    var db: String?

    @Option(name: .long, help: ArgumentHelp("The cluster's store (a PostgreSQL URL, docs/store.md); overrides storage.url (\"\" for none).", valueName: "url"))
    var storeURL: String?

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel: String = "warning"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level '\(logLevel)' is not a level; allowed: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let db, db.isEmpty { throw ValidationError("--db must not be empty") }
        if let storeURL, !storeURL.isEmpty {
            do {
                _ = try ClusterStoreAddress(parsing: storeURL)
            } catch {
                throw ValidationError("--store-url: \(error.description)")
            }
        }
    }

    /// The configuration: defaults, then the file, then command-line overrides.
    func loadConfiguration() throws -> Configuration {
        var configuration = try config.map { path throws(ConfigurationError) in try Configuration.load(path: path) } ?? Configuration()
        if let db { configuration.storage.dbPath = db }
        if let storeURL { configuration.storage.url = storeURL }
        return configuration
    }

    func makeLogger(label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}
