/// A task's state (SPEC §7): `pending`, then `working` (and `blocked` while its agent waits on
/// the CI-event bus), then one final state: `done`, `failed` or `stalled`.
public enum TaskState: String, Sendable, Hashable, CaseIterable {
    /// Not started: a dependency is not done, the role is at capacity, or nobody spawned it.
    case pending
    /// Its agent is iterating (or its check or CI runs).
    case working
    /// Its agent exited 42 and the task waits for CI events.
    case blocked
    /// Its loop ended done and its CI passed (or it has none).
    case done
    /// It did not finish within its iteration budget, or could not be worked on.
    case failed
    /// Its agent changed nothing in the worktree for `stall_after` iterations in a row.
    case stalled

    /// Whether the state is final.
    public var isFinal: Bool { self == .done || self == .failed || self == .stalled }
}
