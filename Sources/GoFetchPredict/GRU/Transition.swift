/// How one open of a stream moves from the file before it: across `directories`
/// (difference of directory ranks; 0 stays in the directory) and `files`, which
/// within a directory is the difference of listing indices and, across
/// directories, depends on the vocabulary's ``TransitionVocabulary/Crossing``.
public struct Transition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var directories: Int32
    public var files: Int32

    public init(directories: Int32, files: Int32) {
        self.directories = directories
        self.files = files
    }

    public static func < (a: Transition, b: Transition) -> Bool {
        (a.directories, a.files) < (b.directories, b.files)
    }

    /// "+3" within a directory, "dir+1:0" across.
    public var description: String {
        directories == 0 ? Self.signed(files) : "dir\(Self.signed(directories)):\(Self.signed(files))"
    }

    /// Parses ``description``.
    public init?(_ text: Substring) {
        if text.hasPrefix("dir") {
            let parts = text.dropFirst(3).split(separator: ":")
            guard parts.count == 2, let directories = Int32(parts[0]), let files = Int32(parts[1]), directories != 0 else { return nil }
            self.init(directories: directories, files: files)
        } else {
            guard let files = Int32(text) else { return nil }
            self.init(directories: 0, files: files)
        }
    }

    private static func signed(_ value: Int32) -> String { value >= 0 ? "+\(value)" : "\(value)" }
}
