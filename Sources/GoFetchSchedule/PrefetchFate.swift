/// What became of one issued prefetch, decided when the job first touches its bytes
/// (or never does).
public enum PrefetchFate: String, Sendable, CaseIterable, Codable {
    /// Loaded before the job read those bytes, and the read was served warm.
    case useful
    /// Issued, but still loading when the job read those bytes.
    case late
    /// Loaded, then never read within its window, or evicted before the job read it
    /// (the job's read of it was cold).
    case wasted
    /// Already resident: nothing was loaded.
    case skipped
    /// Not loaded: denied, missing, failed, or on a mount that drops pages at open.
    case failed
}
