/// What a blocked task waits for on the CI-event bus (SPEC §7): every event of its `wait_for`
/// list, or any event addressed to the task.
public struct BusWaitCondition: Sendable, Hashable {
    /// The task that waits.
    public var task: String
    /// Its `wait_for` event names: the wait ends when each has been published (for everyone or
    /// for this task) after the cursor. Empty: only events addressed to the task end it.
    public var names: [String]

    /// Creates a condition.
    public init(task: String, names: [String]) {
        self.task = task
        self.names = names
    }

    /// The events that satisfy the condition among `events` (in order), or nil.
    ///
    /// Any event addressed to the task (`--task ID`) satisfies it, except the engine's own
    /// `ci.*` reports about the task (its loop already knows them). Otherwise every name of
    /// ``names`` needs a matching event, for everyone or for this task.
    public func match(_ events: some Sequence<CIEvent>) -> [CIEvent]? {
        var matched: [CIEvent] = []
        var missing = Set(names)
        for event in events {
            let addressed = event.task == task && !(event.source == CIEventBus.engineSource && event.name.hasPrefix("ci."))
            if addressed {
                return matched + [event]
            }
            if missing.contains(event.name) && (event.task == nil || event.task == task) {
                missing.remove(event.name)
                matched.append(event)
                if missing.isEmpty && !names.isEmpty { return matched }
            }
        }
        return nil
    }
}
