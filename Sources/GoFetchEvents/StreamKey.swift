/// One access stream: a process, or a data-loader worker when the source knows it.
/// Interleaved workers each keep their own context.
public struct StreamKey: Hashable, Sendable {
    public var pid: UInt32
    public var worker: Int32

    public init(pid: UInt32, worker: Int32) {
        self.pid = pid
        self.worker = worker
    }

    /// Worker id when known (stable across epochs, whose worker pids change) within its
    /// parent (the rank's or job's main process), else the pid.
    public init(_ event: TraceEvent) {
        if let worker = event.workerID {
            self.init(pid: event.parentPID, worker: worker)
        } else {
            self.init(pid: event.pid, worker: -1)
        }
    }
}
