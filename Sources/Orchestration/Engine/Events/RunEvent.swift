import Foundation

/// One thing that happened in a run, as written to `events.jsonl` and the store (SPEC §3).
///
/// What an event carries is typed (``Payload``): the executor produces it, the store, the report
/// builder, the progress printers and the HTML report read it, and one codec (``Payload/json``
/// and ``Payload/init(kind:json:)``) turns it into the `data` object of `events.jsonl` and the
/// `events` table and back. A new field is one change to a payload type and its codec.
///
/// ```swift
/// for event in try RunStore(stateDirectory: state, readOnly: true).events(runID) {
///     if case .stepAttemptFailed(let end) = event.payload, end.timedOut { print("\(event.stepID!) timed out") }
/// }
/// ```
public struct RunEvent: Sendable, Hashable {
    /// The event types of SPEC §3.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case runStarted = "run_started"
        case stepStarted = "step_started"
        /// A cluster accepted the attempt as a job (`data.job_id`); the Slurm executor only.
        case stepSubmitted = "step_submitted"
        case stepAttemptFailed = "step_attempt_failed"
        case stepRetry = "step_retry"
        case stepSucceeded = "step_succeeded"
        case stepFailed = "step_failed"
        case stepSkipped = "step_skipped"
        case stepCancelled = "step_cancelled"
        case runFinished = "run_finished"
        case runResumed = "run_resumed"
    }

    /// What each type of event carries.
    public enum Payload: Sendable, Hashable {
        /// `run_started`: the plan, its size and the concurrency limit.
        case runStarted(RunStart)
        /// `run_resumed`: as `run_started`, for a later session of the same run.
        case runResumed(RunStart)
        /// `step_started`: an attempt begins (the event's `attempt`).
        case stepStarted
        /// `step_submitted`: a cluster accepted the attempt as this job (the Slurm executor only).
        case stepSubmitted(jobID: String)
        /// `step_attempt_failed`: an attempt failed; a retry or the step's end follows.
        case stepAttemptFailed(AttemptEnd)
        /// `step_retry`: the next attempt starts after this delay.
        case stepRetry(delaySeconds: Double)
        /// `step_succeeded`: the last attempt succeeded (nil only in events written by hand).
        case stepSucceeded(AttemptEnd?)
        /// `step_failed`: the step's last attempt failed.
        case stepFailed(AttemptEnd?)
        /// `step_skipped`: never started, and why.
        case stepSkipped(reason: String)
        /// `step_cancelled`: why, and how its attempt ended if one was torn down.
        case stepCancelled(reason: String, attempt: AttemptEnd?)
        /// `run_finished`: the run's final status and exit code.
        case runFinished(RunEnd)

        /// The event type this payload belongs to.
        public var kind: Kind {
            switch self {
            case .runStarted: return .runStarted
            case .runResumed: return .runResumed
            case .stepStarted: return .stepStarted
            case .stepSubmitted: return .stepSubmitted
            case .stepAttemptFailed: return .stepAttemptFailed
            case .stepRetry: return .stepRetry
            case .stepSucceeded: return .stepSucceeded
            case .stepFailed: return .stepFailed
            case .stepSkipped: return .stepSkipped
            case .stepCancelled: return .stepCancelled
            case .runFinished: return .runFinished
            }
        }

        /// How the attempt this event concerns ended, for the events that say.
        public var attemptEnd: AttemptEnd? {
            switch self {
            case .stepAttemptFailed(let end): return end
            case .stepSucceeded(let end), .stepFailed(let end), .stepCancelled(_, let end): return end
            default: return nil
            }
        }

        /// The cluster job the attempt ran as, for the events that say.
        public var jobID: String? {
            if case .stepSubmitted(let jobID) = self { return jobID }
            return attemptEnd?.jobID
        }

        /// The reason of a skipped or cancelled step.
        public var reason: String? {
            switch self {
            case .stepSkipped(let reason), .stepCancelled(let reason, _): return reason
            default: return nil
            }
        }
    }

    /// Position in the run's event log, assigned when the event is recorded (0 until then).
    public var seq: Int64
    /// Wall-clock time of the event.
    public var timestamp: Date
    /// The run.
    public var runID: String
    /// The step concerned, for step events.
    public var stepID: String?
    /// The attempt concerned (1-based), for attempt events.
    public var attempt: Int?
    /// What happened, with its details.
    public var payload: Payload

    /// What happened.
    public var kind: Kind { payload.kind }
    /// The details as the `data` object of `events.jsonl` (nil for `step_started`).
    public var data: JSONValue? { payload.json }

    /// Creates an event.
    public init(seq: Int64 = 0, timestamp: Date = Date(), runID: String, stepID: String? = nil, attempt: Int? = nil,
                payload: Payload) {
        self.seq = seq
        self.timestamp = timestamp
        self.runID = runID
        self.stepID = stepID
        self.attempt = attempt
        self.payload = payload
    }

    /// An event read back from its stored form: `data` goes through the codec
    /// (``Payload/init(kind:json:)``).
    public init(seq: Int64 = 0, timestamp: Date = Date(), runID: String, kind: Kind, stepID: String? = nil,
                attempt: Int? = nil, data: JSONValue? = nil) {
        self.init(seq: seq, timestamp: timestamp, runID: runID, stepID: stepID, attempt: attempt,
                  payload: Payload(kind: kind, json: data))
    }

    /// The event as its `events.jsonl` object: `seq`, `ts`, `run_id`, `type`, then `step_id`,
    /// `attempt` and `data` where they apply.
    public var json: JSONValue {
        var members: [JSONValue.Member] = [
            .init("seq", .int(Int(seq))),
            .init("ts", .string(Timestamp.rfc3339(timestamp))),
            .init("run_id", .string(runID)),
            .init("type", .string(kind.rawValue)),
        ]
        if let stepID { members.append(.init("step_id", .string(stepID))) }
        if let attempt { members.append(.init("attempt", .int(attempt))) }
        if let data { members.append(.init("data", data)) }
        return .object(members)
    }
}

/// How one attempt ended, as its events record it.
public struct AttemptEnd: Sendable, Hashable {
    /// The process's exit code, if it exited.
    public var exitCode: Int32?
    /// The signal that ended it, if one did.
    public var signal: Int32?
    /// Whether it exceeded its timeout.
    public var timedOut: Bool
    /// Whether the engine died while it ran (recorded by `resume`).
    public var engineLost: Bool
    /// One sentence explaining a failure.
    public var error: String?
    /// The cluster job the attempt ran as (the Slurm executor).
    public var jobID: String?
    /// The outputs of a succeeded attempt (`step_succeeded`), values verbatim in events the
    /// engine makes; the codec writes secret ones as ``SecretMask/replacement``, so events read
    /// back hold that instead (``StepOutput/shown``).
    public var outputs: [StepOutput]

    /// Creates an attempt's end.
    public init(exitCode: Int32? = nil, signal: Int32? = nil, timedOut: Bool = false, engineLost: Bool = false,
                error: String? = nil, jobID: String? = nil, outputs: [StepOutput] = []) {
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.engineLost = engineLost
        self.error = error
        self.jobID = jobID
        self.outputs = outputs
    }

    /// What the events record of an attempt's outcome.
    public init(_ outcome: AttemptOutcome) {
        self.init(exitCode: outcome.exitCode, signal: outcome.signal, timedOut: outcome.timedOut, error: outcome.error,
                  jobID: outcome.jobID, outputs: outcome.outputs)
    }

    /// An attempt that was running, or about to, when its engine died.
    public static func engineLost(_ error: String, jobID: String? = nil) -> AttemptEnd {
        AttemptEnd(engineLost: true, error: error, jobID: jobID)
    }
}

/// What `run_started` and `run_resumed` record.
public struct RunStart: Sendable, Hashable {
    /// The plan's id.
    public var planID: String
    /// How many steps the plan has.
    public var steps: Int
    /// The concurrency limit of this session.
    public var maxConcurrency: Int

    /// Creates the details.
    public init(planID: String, steps: Int, maxConcurrency: Int) {
        self.planID = planID
        self.steps = steps
        self.maxConcurrency = maxConcurrency
    }
}

/// What `run_finished` records.
public struct RunEnd: Sendable, Hashable {
    /// The run's final status.
    public var status: RunStatus
    /// The exit code of SPEC §5.
    public var exitCode: Int32
    /// Steps per final status, and the total.
    public var total: Int, succeeded: Int, failed: Int, skipped: Int, cancelled: Int

    /// Creates the details.
    public init(status: RunStatus, exitCode: Int32, total: Int, succeeded: Int = 0, failed: Int = 0, skipped: Int = 0,
                cancelled: Int = 0) {
        self.status = status
        self.exitCode = exitCode
        self.total = total
        self.succeeded = succeeded
        self.failed = failed
        self.skipped = skipped
        self.cancelled = cancelled
    }
}
