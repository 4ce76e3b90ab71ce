/// A task's state (SPEC §7): `pending`, then `working` (and `blocked` while its agent waits on
/// the CI-event bus), then one final state: `done`, `failed`, `stalled` or `blocked_timeout`.
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
    /// Its agent was blocked (exit 42) and the awaited events did not arrive within the task's
    /// (or its role's) `wait_timeout_sec`. Dependents and milestones treat it like `failed`.
    case blockedTimeout = "blocked_timeout"

    /// Whether the state is final.
    public var isFinal: Bool { self == .done || self == .failed || self == .stalled || self == .blockedTimeout }

    /// Whether the state is final and not `done`: the task's dependents can never start and its
    /// milestone cannot complete.
    public var isUnsuccessful: Bool { isFinal && self != .done }
}
