/// A config file that cannot be used, with the key, the value and what is allowed.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var key: String
    public var value: String
    public var problem: String

    public init(file: String, key: String, value: String, problem: String) {
        self.file = file
        self.key = key
        self.value = value
        self.problem = problem
    }

    public var description: String {
        if key.isEmpty {
            return "\(file): \(problem)"
        }
        return "\(file): \(key): \(value.isEmpty ? "" : "\(value): ")\(problem)"
    }
}
