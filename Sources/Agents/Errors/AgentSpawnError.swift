import Orchestration

/// Why an agent could not be spawned for a task (``Orchestrator/spawnAgent(role:task:)``), or
/// why its workspace could not be prepared.
public struct AgentSpawnError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure. New codes can be added without breaking callers.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The code's name.
        public var rawValue: String
        /// Creates a code from its name.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// No role with that name (exit 3).
        public static let unknownRole = Code(rawValue: "unknown_role")
        /// No task with that id (exit 3).
        public static let unknownTask = Code(rawValue: "unknown_task")
        /// The task belongs to another role (exit 2).
        public static let wrongRole = Code(rawValue: "wrong_role")
        /// A dependency of the task failed or stalled, so it can never start (exit 2).
        public static let notReady = Code(rawValue: "not_ready")
        /// The task already has an agent, or is finished (exit 2).
        public static let alreadyStarted = Code(rawValue: "already_started")
        /// The orchestrator is not running (exit 2).
        public static let notRunning = Code(rawValue: "not_running")
        /// The task's git worktree or branch could not be prepared (exit 74).
        public static let workspaceFailed = Code(rawValue: "workspace_failed")

        /// The code's name.
        public var description: String { rawValue }
    }

    /// What kind of failure.
    public var code: Code
    /// One sentence a user can act on.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - message: One sentence.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// The error as the CLI reports it.
    public var engineError: EngineError {
        switch code {
        case .unknownRole, .unknownTask: return EngineError(.unknownReference, message)
        case .workspaceFailed: return EngineError(.stateFailure, message)
        default: return EngineError(.usage, message)
        }
    }
}
