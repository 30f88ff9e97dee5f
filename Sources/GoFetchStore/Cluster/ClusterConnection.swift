import Foundation
import GoFetchConfig
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// What went wrong with the cluster's store: the address (without its password) and the problem.
public struct ClusterStoreError: Error, CustomStringConvertible, Sendable {
    public var address: String
    public var problem: String
    public var description: String { "cluster store \(address): \(problem)" }
}

/// One connection to the cluster's PostgreSQL store, used from one plain thread at a
/// time (the daemon's copier, a command): each call blocks that thread until the
/// server answers or `timeout` passes, then the connection is closed and the call throws.
final class ClusterConnection: @unchecked Sendable {
    let address: ClusterStoreAddress
    private let connection: PostgresConnection
    private let logger: Logger
    private static let timeout: DispatchTimeInterval = .seconds(10)

    private init(address: ClusterStoreAddress, connection: PostgresConnection, logger: Logger) {
        self.address = address
        self.connection = connection
        self.logger = logger
    }

    static func connect(_ address: ClusterStoreAddress, logger: Logger) throws(ClusterStoreError) -> ClusterConnection {
        let configuration: PostgresConnection.Configuration
        switch address.endpoint {
        case .tcp(let host, let port):
            configuration = .init(host: host, port: port, username: address.user, password: address.password, database: address.database, tls: .disable)
        case .unix(let path):
            configuration = .init(unixSocketPath: path, username: address.user, password: address.password, database: address.database)
        }
        let connection = try blocking(address, timeout: timeout, onTimeout: {}) {
            try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        }
        return ClusterConnection(address: address, connection: connection, logger: logger)
    }

    /// Runs a statement, discarding any rows.
    func execute(_ query: PostgresQuery) throws(ClusterStoreError) {
        let (connection, logger) = (self.connection, self.logger)
        try call {
            try await connection.query(query, logger: logger).collect()
            return ()
        }
    }

    /// Runs a query and decodes each row with `decode`.
    func rows<T: Sendable>(_ query: PostgresQuery, _ decode: @escaping @Sendable (PostgresRow) throws -> T) throws(ClusterStoreError) -> [T] {
        let (connection, logger) = (self.connection, self.logger)
        return try call {
            try await connection.query(query, logger: logger).collect().map(decode)
        }
    }

    /// `COPY table (columns) FROM STDIN` with rows in PostgreSQL's text format.
    func copy(table: String, columns: [String], text: ByteBuffer) throws(ClusterStoreError) {
        let (connection, logger) = (self.connection, self.logger)
        try call {
            try await connection.copyFrom(table: table, columns: columns, logger: logger) { writer in
                try await writer.write(text)
            }
        }
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    func transaction<T>(_ body: () throws(ClusterStoreError) -> T) throws(ClusterStoreError) -> T {
        try execute("BEGIN")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    func close() {
        let connection = self.connection
        _ = try? Self.blocking(address, timeout: .seconds(5), onTimeout: {}) { try await connection.close() }
    }

    private func call<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws(ClusterStoreError) -> T {
        let connection = self.connection
        // A statement on a connection the server closed (a restart between two
        // passes) would wait for the timeout instead of failing.
        guard !connection.isClosed else {
            throw ClusterStoreError(address: address.description, problem: "the server closed the connection")
        }
        return try Self.blocking(address, timeout: Self.timeout, onTimeout: { connection.close().whenComplete { _ in } }, body)
    }

    /// Waits on this (non-cooperative) thread for `body`, run as a task.
    private static func blocking<T: Sendable>(
        _ address: ClusterStoreAddress, timeout: DispatchTimeInterval, onTimeout: () -> Void,
        _ body: @escaping @Sendable () async throws -> T
    ) throws(ClusterStoreError) -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            outcome.withLock { $0 = result }
            done.signal()
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            onTimeout()
            _ = done.wait(timeout: .now() + .seconds(5))
            throw ClusterStoreError(address: address.description, problem: "no answer within \(timeout)")
        }
        switch outcome.withLock({ $0 }) {
        case .success(let value): return value
        case .failure(let error): throw ClusterStoreError(address: address.description, problem: Self.describe(error))
        case nil: throw ClusterStoreError(address: address.description, problem: "no answer")
        }
    }

    /// The server's own message where there is one (PSQLError hides it from `description`).
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return "\(error.code): \(message)" }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }
}
