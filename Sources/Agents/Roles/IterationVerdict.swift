/// The decision at the end of one iteration of the Ralph loop: a pure function of what the
/// iteration observed, so the rules are unit-tested without processes.
public enum IterationVerdict: Sendable, Hashable {
    /// The task is done (then its work is committed and its CI runs).
    case done
    /// The agent exited 42: the task waits on the bus.
    case blocked
    /// Not done yet: wait `retry_interval` and iterate again. The string says why.
    case notYet(String)
    /// The iteration budget is spent.
    case failed(String)
    /// The worktree did not change for `stall_after` iterations in a row.
    case stalled(String)

    /// The agent's exit status that means "blocked, waiting for CI events".
    public static let blockedExitCode: Int32 = 42

    /// What one iteration observed.
    public struct Observation: Sendable, Hashable {
        /// The agent's exit status (nil: killed by a signal, timed out, did not start).
        public var exitStatus: Int32?
        /// How the agent ended, for messages.
        public var agentDescription: String
        /// The `done_when` check's verdict, when the task has one.
        public var checkPassed: Bool?
        /// Whether the completion promise was printed, when the task uses one.
        public var promiseFound: Bool?
        /// The promise text, for messages.
        public var promise: String?
        /// Iterations counted against the budget, this one included.
        public var budgetUsed: Int
        /// The budget (`max_retries`).
        public var maxRetries: Int
        /// Iterations in a row, this one included, that changed nothing in the worktree.
        public var unchangedStreak: Int
        /// The stall threshold (0: off).
        public var stallAfter: Int

        /// Creates an observation.
        public init(exitStatus: Int32?, agentDescription: String = "", checkPassed: Bool?, promiseFound: Bool?,
                    promise: String? = nil, budgetUsed: Int, maxRetries: Int, unchangedStreak: Int, stallAfter: Int) {
            self.exitStatus = exitStatus
            self.agentDescription = agentDescription
            self.checkPassed = checkPassed
            self.promiseFound = promiseFound
            self.promise = promise
            self.budgetUsed = budgetUsed
            self.maxRetries = maxRetries
            self.unchangedStreak = unchangedStreak
            self.stallAfter = stallAfter
        }
    }

    /// Decides.
    ///
    /// 1. Exit 42 is `blocked`, whatever else happened.
    /// 2. Done when the check passed and the promise was printed; a task with only one of the
    ///    two needs only that one. A completion on the last allowed iteration counts.
    /// 3. Otherwise `stalled` when the streak reached `stall_after`, `failed` when the budget is
    ///    spent, else `notYet`.
    public static func decide(_ observed: Observation) -> IterationVerdict {
        if observed.exitStatus == blockedExitCode { return .blocked }
        let tag = CompletionPromise.tag(observed.promise ?? "DONE")
        let why: String
        switch (observed.checkPassed, observed.promiseFound) {
        case (true, true), (true, nil), (nil, true):
            return .done
        case (false, true):
            why = "the agent printed \(tag) but the done_when check failed"
        case (true, false):
            why = "the done_when check passed but the agent did not print \(tag) on a line of its own"
        case (false, _):
            why = "the done_when check failed"
        case (nil, _):
            why = "the agent did not print \(tag) on a line of its own"
        }
        let agent = observed.agentDescription.isEmpty ? "" : " (agent \(observed.agentDescription))"
        if observed.stallAfter > 0 && observed.unchangedStreak >= observed.stallAfter {
            return .stalled("the agent changed nothing in the worktree for \(observed.unchangedStreak) iterations in a row (stall_after \(observed.stallAfter)); last: \(why)\(agent)")
        }
        if observed.budgetUsed >= observed.maxRetries {
            return .failed("not done after \(observed.budgetUsed) iterations (max_retries \(observed.maxRetries)); last: \(why)\(agent)")
        }
        return .notYet(why + agent)
    }

    /// The verdict's name in events and the store.
    public var name: String {
        switch self {
        case .done: "done"
        case .blocked: "blocked"
        case .notYet: "not_yet"
        case .failed: "failed"
        case .stalled: "stalled"
        }
    }

    /// Why, for messages.
    public var detail: String {
        switch self {
        case .done: "done"
        case .blocked: "the agent exited 42 (blocked)"
        case .notYet(let why), .failed(let why), .stalled(let why): why
        }
    }
}
