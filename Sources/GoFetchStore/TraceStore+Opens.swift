import GoFetchEvents

/// One stored open and the stream it belongs to.
public struct StoredOpen: Sendable, Hashable {
    public var stream: StreamKey
    public var file: FileID

    public init(stream: StreamKey, file: FileID) {
        self.stream = stream
        self.file = file
    }
}

extension TraceStore {
    /// Replays every stored open, in order, with its stream: the worker when the
    /// event was tagged with one, else the process. Streams of different runs never
    /// continue each other. This is what the predictors are trained on.
    public func forEachOpen(runID: Int64? = nil, _ body: (StoredOpen) -> Void) throws(TraceStoreError) {
        try replay(runID: runID, kinds: [.open]) { event in
            body(StoredOpen(stream: StreamKey(event), file: event.fileID))
            return true
        }
    }

    /// Every stored open, in order (see ``forEachOpen(runID:_:)``).
    public func opens(runID: Int64? = nil) throws(TraceStoreError) -> [StoredOpen] {
        var opens: [StoredOpen] = []
        try forEachOpen(runID: runID) { opens.append($0) }
        return opens
    }
}
