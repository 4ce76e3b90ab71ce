import Orchestration

/// One event on the CI-event bus: `ci.passed` / `ci.failed` published by the engine for a task,
/// or anything an external system publishes with `ci emit`.
public struct CIEvent: Sendable, Hashable {
    /// The order of the event in `agents.db` (1, 2, ...; global to the state folder).
    public var seq: Int64
    /// The event id: duplicates (same id) are stored and delivered once.
    public var id: String
    /// The event name, e.g. `ci.passed`, `staging.deployed`.
    public var name: String
    /// The task it is for, if any.
    public var task: String?
    /// Its payload (any JSON), if any.
    public var data: JSONValue?
    /// Who published it: `engine` or `cli`.
    public var source: String
    /// When it was stored (RFC 3339).
    public var timestamp: String

    /// Creates an event.
    public init(seq: Int64, id: String, name: String, task: String?, data: JSONValue?, source: String, timestamp: String) {
        self.seq = seq
        self.id = id
        self.name = name
        self.task = task
        self.data = data
        self.source = source
        self.timestamp = timestamp
    }

    /// The event as JSON: `{"seq", "id", "name", "task", "data", "source", "ts"}`.
    public var json: JSONValue {
        .object([
            "seq": .int(Int(seq)),
            "id": .string(id),
            "name": .string(name),
            "task": task.map { .string($0) } ?? .null,
            "data": data ?? .null,
            "source": .string(source),
            "ts": .string(timestamp),
        ])
    }
}
