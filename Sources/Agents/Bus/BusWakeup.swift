/// Why a blocked task woke up: the events that satisfied its wait, and the new cursor.
public struct BusWakeup: Sendable, Hashable {
    /// The events that ended the wait, in order.
    public var events: [CIEvent]
    /// Events up to this sequence number have been seen; the next wait looks at later ones.
    public var cursor: Int64
}
