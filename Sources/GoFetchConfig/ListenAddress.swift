import Foundation

/// Where the Prometheus exposition listens: a loopback TCP port or a Unix socket.
/// Only loopback hosts are accepted: the figures name files of the job.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: UInt16, ipv6: Bool)
    case unix(path: String)

    /// Parses `127.0.0.1:9464`, `localhost:9464`, `[::1]:9464` or `unix:/path`; `nil` otherwise.
    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/"), path.utf8.count <= 107 else { return nil }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        switch text[..<colon] {
        case "127.0.0.1", "localhost": self = .tcp(host: "127.0.0.1", port: port, ipv6: false)
        case "[::1]": self = .tcp(host: "::1", port: port, ipv6: true)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port, let ipv6): ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}
