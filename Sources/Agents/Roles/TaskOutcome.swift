/// How a role agent's work on a task ended.
public enum TaskOutcome: Sendable, Hashable {
    /// Done, committed, CI passed.
    case done
    /// Failed: budget spent, workspace could not be prepared, or the store failed.
    case failed(String)
    /// Stalled: no change in the worktree for `stall_after` iterations.
    case stalled(String)
    /// Blocked past its `wait_timeout_sec`: the reason names the events that did not arrive.
    case blockedTimeout(String)
    /// Stopped by cancellation (stop, Ctrl-C): the task stays `working`/`blocked` in the store
    /// and `--resume` continues it.
    case interrupted

    /// The final task state, if the outcome is final.
    public var state: TaskState? {
        switch self {
        case .done: .done
        case .failed: .failed
        case .stalled: .stalled
        case .blockedTimeout: .blockedTimeout
        case .interrupted: nil
        }
    }

    /// Why the task did not end done, if it did not.
    public var reason: String? {
        switch self {
        case .failed(let why), .stalled(let why), .blockedTimeout(let why): why
        case .done, .interrupted: nil
        }
    }
}
