import Orchestration

/// A role of a project plan: the agent command its tasks run, and how many tasks it works on at once.
public struct RoleSpec: Sendable, Hashable {
    /// The command an agent of this role runs each iteration.
    public struct AgentCommand: Sendable, Hashable {
        /// The program: a name looked up in `PATH`, or a path (a relative path that contains a
        /// `/` was resolved against the project folder at load time).
        public var command: String
        /// Its arguments; `${TASK_ID}`, `${TASK_TITLE}`, `${TASK_PROMPT}`, `${ITERATION}`,
        /// `${WORKSPACE}`, `${ROLE}`, `${PROMPT_FILE}`, `${PROJECT_DIR}` and `${CI_LOG}` are
        /// substituted before each iteration (never through a shell).
        public var arguments: [String]
        /// Extra environment variables (values substituted like the arguments).
        public var environment: [String: String]
        /// The time limit of one iteration; `nil` means none.
        public var timeout: Duration?

        /// Creates a command.
        public init(command: String, arguments: [String] = [], environment: [String: String] = [:],
                    timeout: Duration? = nil) {
            self.command = command
            self.arguments = arguments
            self.environment = environment
            self.timeout = timeout
        }
    }

    /// The role's name (a branch name component: `agent/<role>/<task>`).
    public var name: String
    /// The agent command.
    public var agent: AgentCommand
    /// `max_parallel`: the most tasks of this role that run at once (default 1).
    public var maxParallel: Int
    /// `wait_timeout_sec`: the longest blocked wait of the role's tasks that set none
    /// themselves; nil waits without limit.
    public var waitTimeout: Duration?
    /// `executor`: where the agent's iterations run: `local` processes (the default) or `slurm`,
    /// one batch job per iteration (the worktrees must then be on a file system the nodes share).
    /// The done-when check, blocked waits and the bus stay in the engine.
    public var executor: ExecutorKind
    /// `slurm`: the jobs' settings (as a plan's `globals.slurm`).
    public var slurm: SlurmSettings

    /// Creates a role.
    public init(name: String, agent: AgentCommand, maxParallel: Int = 1, waitTimeout: Duration? = nil,
                executor: ExecutorKind = .local, slurm: SlurmSettings = SlurmSettings()) {
        self.name = name
        self.agent = agent
        self.maxParallel = maxParallel
        self.waitTimeout = waitTimeout
        self.executor = executor
        self.slurm = slurm
    }
}
