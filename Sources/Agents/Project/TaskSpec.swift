/// A task of a project plan: what its agent is asked to do, and how the loop knows it is done.
public struct TaskSpec: Sendable, Hashable {
    /// A command whose exit status 0 means "done" (`done_when`), run in the task's worktree.
    public struct Check: Sendable, Hashable {
        /// The program (looked up in `PATH`, or a path).
        public var command: String
        /// Its arguments (substituted like the agent's).
        public var arguments: [String]
        /// The check's time limit (default 300 seconds).
        public var timeout: Duration

        /// Creates a check.
        public init(command: String, arguments: [String] = [], timeout: Duration = .seconds(300)) {
            self.command = command
            self.arguments = arguments
            self.timeout = timeout
        }
    }

    /// The task id (a branch name component).
    public var id: String
    /// The role that works on it.
    public var role: String
    /// `title`.
    public var title: String
    /// `prompt`: what the agent is asked to do.
    public var prompt: String
    /// Tasks whose work this task builds on; it starts when they are all done.
    public var dependsOn: [String]
    /// `done_when`: the check that decides "done", if any.
    public var doneWhen: Check?
    /// The completion promise: the text `X` of a `<promise>X</promise>` line that the agent
    /// prints, alone on its line, when it believes the task is done.
    ///
    /// `nil` when the task has a check and no `completion_promise`; `"DONE"` when it has neither
    /// (SPEC §7). With both a check and a promise, both must agree.
    public var completionPromise: String?
    /// `wait_for`: the events a blocked agent (exit 42) waits for.
    public var waitFor: [String]
    /// `max_retries`: the task's own iteration budget, if set.
    public var maxRetries: Int?
    /// `stall_after`: the task's own stall threshold, if set.
    public var stallAfter: Int?
    /// `wait_timeout_sec`: how long one blocked wait (exit 42) may last before the task ends
    /// `blocked_timeout`; nil falls back to the role's, and waits without limit when that is
    /// nil too.
    public var waitTimeout: Duration?

    /// Creates a task.
    public init(id: String, role: String, title: String, prompt: String = "", dependsOn: [String] = [],
                doneWhen: Check? = nil, completionPromise: String? = nil, waitFor: [String] = [],
                maxRetries: Int? = nil, stallAfter: Int? = nil, waitTimeout: Duration? = nil) {
        self.id = id
        self.role = role
        self.title = title
        self.prompt = prompt
        self.dependsOn = dependsOn
        self.doneWhen = doneWhen
        self.completionPromise = completionPromise ?? (doneWhen == nil ? "DONE" : nil)
        self.waitFor = waitFor
        self.maxRetries = maxRetries
        self.stallAfter = stallAfter
        self.waitTimeout = waitTimeout
    }
}
