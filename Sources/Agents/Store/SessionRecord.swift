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

    /// Creates a session record (for embedders that drive the store and bus themselves).
    public init(id: String, project: String, projectDirectory: String, repository: String, sandbox: String,
                integrationBranch: String, config: JSONValue, plan: [UInt8], status: Status, enginePID: Int?,
                startedAt: String, finishedAt: String?) {
        self.id = id
        self.project = project
        self.projectDirectory = projectDirectory
        self.repository = repository
        self.sandbox = sandbox
        self.integrationBranch = integrationBranch
        self.config = config
        self.plan = plan
        self.status = status
        self.enginePID = enginePID
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}
