import Synchronization

/// An observer that keeps every event of a run in memory, with full timestamp precision (the
/// store keeps milliseconds): for `--mode profile` and for tests.
package final class EventBuffer: RunObserver, LoopSafeObserver {
    private let buffer = Mutex<[RunEvent]>([])

    /// Creates an empty buffer.
    public init() {}

    /// The events so far, in order.
    public var events: [RunEvent] { buffer.withLock { $0 } }

    public func record(_ events: [RunEvent]) async throws {
        buffer.withLock { $0 += events }
    }
}
