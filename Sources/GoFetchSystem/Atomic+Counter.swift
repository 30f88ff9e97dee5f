import Synchronization

extension Atomic where Value == Int {
    @inline(__always) public func add(_ value: Int) { wrappingAdd(value, ordering: .relaxed) }
    @inline(__always) public var value: Int { load(ordering: .relaxed) }
}
