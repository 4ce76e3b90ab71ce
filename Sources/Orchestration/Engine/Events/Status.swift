/// A step's status (SPEC §2): `pending`, `running`, then one final status.
public enum StepStatus: String, Sendable, Hashable, CaseIterable {
    case pending, running, succeeded, failed, skipped, cancelled

    /// Whether the status is one of the final ones.
    public var isFinal: Bool {
        switch self {
        case .pending, .running: return false
        case .succeeded, .failed, .skipped, .cancelled: return true
        }
    }
}

/// A run's status (SPEC §2): `pending`, `running`, then `succeeded`, `failed` or `cancelled`.
public enum RunStatus: String, Sendable, Hashable, CaseIterable {
    case pending, running, succeeded, failed, cancelled

    /// Whether the status is one of the final ones.
    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// How one attempt of a step ended.
public struct AttemptOutcome: Sendable, Hashable {
    /// The attempt's verdict.
    public enum Result: Sendable, Hashable {
        case succeeded
        case failed
        /// Torn down because the run was stopped.
        case cancelled
        /// Not run: the user chose to skip it (`run --step`).
        case skipped
    }

    /// The verdict.
    public var result: Result
    /// The process's exit code, if it exited.
    public var exitCode: Int32?
    /// The signal that killed the process, if one did.
    public var signal: Int32?
    /// Whether the attempt exceeded its timeout.
    public var timedOut: Bool
    /// One sentence explaining a failure ("exited with code 3", "command not found: foo").
    public var error: String?
    /// The id a cluster scheduler gave the attempt (a Slurm job id); nil for local attempts.
    public var jobID: String?
    /// What a succeeded attempt wrote to `$OMNIBASE_OUTPUT` (the engine reads it, SPEC section
    /// 11), in the order the names first appear.
    public var outputs: [StepOutput] = []

    /// Creates an outcome.
    public init(result: Result, exitCode: Int32? = nil, signal: Int32? = nil, timedOut: Bool = false,
                error: String? = nil, jobID: String? = nil) {
        self.result = result
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.error = error
        self.jobID = jobID
    }

    /// A successful attempt.
    public static let success = AttemptOutcome(result: .succeeded, exitCode: 0)
}
