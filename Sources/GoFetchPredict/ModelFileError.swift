import Foundation

/// Why a model file could not be read or written.
public struct ModelFileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public var description: String { "model \(path): \(problem)" }

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    /// Writes a model file atomically, creating its folder.
    static func write(_ bytes: [UInt8], to path: String) throws(ModelFileError) {
        do {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ModelFileError(path: path, problem: "cannot write: \(error.localizedDescription)")
        }
    }

    /// Reads a whole model file.
    static func read(_ path: String) throws(ModelFileError) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ModelFileError(path: path, problem: "cannot read: \(error.localizedDescription)")
        }
    }
}
