import Orchestration

/// One `agents run` of a project, as stored in `agents.db` (`sessions` table).
public struct SessionRecord: Sendable, Hashable {
    /// The session's status.
    public enum Status: String, Sendable, Hashable {
        /// An engine works on it (or died while it did: see ``SessionSnapshot/live``).
        case running
        /// Every task done, every milestone complete or merged.
        case succeeded
        /// It ended with failed or stalled tasks, or blocked milestones.
        case failed
        /// It was stopped (Ctrl-C, SIGTERM, ``Orchestrator/stop()``); `--resume` continues it.
        case interrupted
    }

    /// The session id (`s-YYYYMMDD-HHMMSS-xxxxxx`).
    public var id: String
    /// The project's name.
    public var project: String
    /// The project folder.
    public var projectDirectory: String
    /// The git repository.
    public var repository: String
    /// The folder of the worktrees.
    public var sandbox: String
    /// The integration branch.
    public var integrationBranch: String
    /// The effective settings (`auto_merge`, `max_retries`, `retry_interval_sec`, ...).
    public var config: JSONValue
    /// The plan file's bytes when the session started.
    public var plan: [UInt8]
    /// The status.
    public var status: Status
    /// The pid of the engine that last worked on it.
    public var enginePID: Int?
    /// When it started (RFC 3339).
    public var startedAt: String
    /// When it ended (RFC 3339), if it did.
    public var finishedAt: String?
}
