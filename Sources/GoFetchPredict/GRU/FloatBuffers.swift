/// Zeroed `Float` buffers that live as long as their owner: the GRU's activations
/// and scratch, allocated once so that no step allocates.
final class FloatBuffers {
    private var buffers: [UnsafeMutablePointer<Float>] = []

    /// A new zeroed buffer of `count` values (at least one).
    func make(_ count: Int) -> UnsafeMutablePointer<Float> {
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
        buffers.append(pointer)
        return pointer
    }

    deinit {
        for buffer in buffers { buffer.deallocate() }
    }
}
