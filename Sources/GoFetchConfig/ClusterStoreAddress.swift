import Foundation

/// Where the cluster's shared trace store is: `storage.url`, a PostgreSQL URL.
///
/// `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` over TCP, or
/// `postgresql://USER@/DATABASE?host=/run/postgresql` over the Unix socket in that
/// folder (libpq's convention; the socket is `.s.PGSQL.PORT` in it, port 5432 unless
/// given). `postgres://` is accepted as well. TLS is not used: the daemons reach the
/// server on a private network or a local socket.
public struct ClusterStoreAddress: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var endpoint: Endpoint
    public var user: String
    public var password: String?
    public var database: String

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public static let allowed =
        "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE or postgresql://USER@/DATABASE?host=/socket/folder"

    public init(parsing text: String) throws(Invalid) {
        guard text.hasPrefix("postgresql://") || text.hasPrefix("postgres://"),
              let components = URLComponents(string: text) else {
            throw Invalid(description: "not a PostgreSQL URL; allowed: \(Self.allowed)")
        }
        guard let user = components.user, !user.isEmpty else {
            throw Invalid(description: "names no user; allowed: \(Self.allowed)")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !database.isEmpty, !database.contains("/") else {
            throw Invalid(description: "names no database (the path after the host); allowed: \(Self.allowed)")
        }
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else { throw Invalid(description: "port \(port) is out of range; allowed: 1 to 65535") }
        var socketFolder: String?
        for item in components.queryItems ?? [] {
            switch item.name {
            case "host": socketFolder = item.value
            default: throw Invalid(description: "unknown parameter '\(item.name)'; allowed: host (a socket folder)")
            }
        }
        if let socketFolder {
            guard socketFolder.hasPrefix("/") else {
                throw Invalid(description: "host=\(socketFolder) is not an absolute folder (the Unix socket's)")
            }
            let path = socketFolder + (socketFolder.hasSuffix("/") ? "" : "/") + ".s.PGSQL.\(port)"
            guard path.utf8.count <= 107 else { throw Invalid(description: "the socket path \(path) is longer than 107 bytes") }
            endpoint = .unix(path: path)
        } else {
            guard let host = components.host, !host.isEmpty else {
                throw Invalid(description: "names no host and no ?host=/socket/folder; allowed: \(Self.allowed)")
            }
            endpoint = .tcp(host: host, port: port)
        }
        self.user = user
        self.password = components.password
        self.database = database
    }

    /// The address without its password.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port): "postgresql://\(user)@\(host):\(port)/\(database)"
        case .unix(let path): "postgresql://\(user)@/\(database) (socket \(path))"
        }
    }
}
