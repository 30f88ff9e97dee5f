import Foundation
import GoFetchConfig
import Logging
import NIOCore
import PostgresNIO

/// What went wrong with the cluster's store: the address (without its password) and the problem.
public struct ClusterStoreError: Error, CustomStringConvertible, Sendable {
    public var address: String
    public var problem: String
    /// Trying again cannot help (a database gofetch will not write to).
    public var permanent = false
    public var description: String { "cluster store \(address): \(problem)" }
}

/// One connection to the cluster's PostgreSQL store, used from one plain thread at a
/// time (the daemon's copier, a command, the daemon's start). Each call waits on
/// PostgresNIO's event loop (EventLoopFuture, not Swift concurrency: the caller may be
/// on a cooperative thread, and a pool of one would then have none left for a task)
/// until the server answers or a timeout passes; then the connection is closed and
/// the call throws.
final class ClusterConnection: @unchecked Sendable {
    let address: ClusterStoreAddress
    private let connection: PostgresConnection
    private let logger: Logger
    static let connectTimeout: TimeAmount = .seconds(3)
    /// A statement's limit; the server is told to cancel it a little sooner
    /// (`statement_timeout`), so one the client gave up on holds no locks.
    static let statementTimeout: TimeAmount = .seconds(10)

    private init(address: ClusterStoreAddress, connection: PostgresConnection, logger: Logger) {
        self.address = address
        self.connection = connection
        self.logger = logger
    }

    static func connect(_ address: ClusterStoreAddress, logger: Logger) throws(ClusterStoreError) -> ClusterConnection {
        var configuration: PostgresConnection.Configuration
        switch address.endpoint {
        case .tcp(let host, let port):
            configuration = .init(host: host, port: port, username: address.user, password: address.password, database: address.database, tls: .disable)
        case .unix(let path):
            configuration = .init(unixSocketPath: path, username: address.user, password: address.password, database: address.database)
        }
        configuration.options.connectTimeout = connectTimeout
        let future = PostgresConnection.connect(
            on: PostgresConnection.defaultEventLoopGroup.any(), configuration: configuration, id: 1, logger: logger)
        // A connection that arrives after the wait gave up is closed, not leaked.
        let connection = try wait(future, address: address, what: "connecting", timeout: connectTimeout + .seconds(1)) {
            future.whenSuccess { let closing: EventLoopFuture<Void> = $0.close(); _ = closing }
        }
        let opened = ClusterConnection(address: address, connection: connection, logger: logger)
        do throws(ClusterStoreError) {
            try opened.execute("SET statement_timeout = 9000")
        } catch {
            opened.close()
            throw error
        }
        return opened
    }

    /// Runs a statement, discarding any rows.
    func execute(_ query: PostgresQuery) throws(ClusterStoreError) {
        _ = try call(query)
    }

    /// Runs a query and decodes each row with `decode`.
    func rows<T>(_ query: PostgresQuery, _ decode: (PostgresRow) throws -> T) throws(ClusterStoreError) -> [T] {
        let result = try call(query)
        do {
            return try result.rows.map(decode)
        } catch {
            throw ClusterStoreError(address: address.description, problem: "a row of an unexpected shape: \(Self.describe(error))")
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
            if !connection.isClosed { try? execute("ROLLBACK") }
            throw error
        }
    }

    func close() {
        guard !connection.isClosed else { return }
        let closing: EventLoopFuture<Void> = connection.close()
        _ = try? closing.wait()
    }

    private func call(_ query: PostgresQuery) throws(ClusterStoreError) -> PostgresQueryResult {
        // A statement on a connection the server closed (a restart between two passes)
        // fails at once instead of waiting for the timeout.
        guard !connection.isClosed else {
            throw ClusterStoreError(address: address.description, problem: "the server closed the connection")
        }
        let connection = self.connection
        let result: EventLoopFuture<PostgresQueryResult> = connection.query(query, logger: logger)
        return try Self.wait(result, address: address, what: "a statement", timeout: Self.statementTimeout) {
            let closing: EventLoopFuture<Void> = connection.close()
            _ = closing
        }
    }

    private struct TimedOut: Error {}

    /// Waits on this thread (never an event loop's) for `future`, at most `timeout`.
    private static func wait<T: Sendable>(
        _ future: EventLoopFuture<T>, address: ClusterStoreAddress, what: String, timeout: TimeAmount, onTimeout: () -> Void
    ) throws(ClusterStoreError) -> T {
        let loop = future.eventLoop
        let promise = loop.makePromise(of: T.self)
        // Both callbacks run on the future's event loop: the first to come completes the promise.
        let timer = loop.scheduleTask(in: timeout) { promise.fail(TimedOut()) }
        future.whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        do {
            return try promise.futureResult.wait()
        } catch is TimedOut {
            onTimeout()
            throw ClusterStoreError(address: address.description,
                                    problem: "no answer \(what == "connecting" ? "while connecting" : "to \(what)") within \(timeout.nanoseconds / 1_000_000_000) s")
        } catch {
            throw ClusterStoreError(address: address.description, problem: (what == "connecting" ? "connecting: " : "") + describe(error))
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
