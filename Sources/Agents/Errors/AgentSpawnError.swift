import Orchestration

/// Why an agent could not be spawned for a task (``Orchestrator/spawnAgent(role:task:)``), or
/// why its workspace could not be prepared.
public typealias AgentSpawnError = CodedError<AgentSpawnErrorCode>

/// What kind of failure an ``AgentSpawnError`` is. New codes can be added without breaking
/// callers.
public struct AgentSpawnErrorCode: ErrorCode {
    /// The code's name.
    public var rawValue: String
    /// Creates a code from its name.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// No role with that name (exit 3).
    public static let unknownRole = Self(rawValue: "unknown_role")
    /// No task with that id (exit 3).
    public static let unknownTask = Self(rawValue: "unknown_task")
    /// The task belongs to another role (exit 2).
    public static let wrongRole = Self(rawValue: "wrong_role")
    /// A dependency of the task failed or stalled, so it can never start (exit 2).
    public static let notReady = Self(rawValue: "not_ready")
    /// The task already has an agent, or is finished (exit 2).
    public static let alreadyStarted = Self(rawValue: "already_started")
    /// The orchestrator is not running (exit 2).
    public static let notRunning = Self(rawValue: "not_running")
    /// The task's git worktree or branch could not be prepared (exit 74).
    public static let workspaceFailed = Self(rawValue: "workspace_failed")

    /// Unknown names exit 3, a failed workspace 74, the rest 2.
    public var engineCode: EngineError.Code {
        switch self {
        case .unknownRole, .unknownTask: .unknownReference
        case .workspaceFailed: .stateFailure
        default: .usage
        }
    }
}
