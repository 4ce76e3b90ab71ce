import Foundation

/// One thing that happened in a run, as written to `events.jsonl` and the store (SPEC §3).
///
/// What an event carries is typed (``Payload``): the executor produces it, the store, the report
/// builder, the progress printers and the HTML report read it, and one codec (``Payload/json``
/// and ``Payload/init(kind:json:)``) turns it into the `data` object of `events.jsonl` and the
/// `events` table and back. A new field is one change to a payload type and its codec.
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

    /// Creates an attempt's end.
    public init(exitCode: Int32? = nil, signal: Int32? = nil, timedOut: Bool = false, engineLost: Bool = false,
                error: String? = nil, jobID: String? = nil) {
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.engineLost = engineLost
        self.error = error
        self.jobID = jobID
    }

    /// What the events record of an attempt's outcome.
    public init(_ outcome: AttemptOutcome) {
        self.init(exitCode: outcome.exitCode, signal: outcome.signal, timedOut: outcome.timedOut, error: outcome.error,
                  jobID: outcome.jobID)
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

/// RFC 3339 UTC timestamps with milliseconds (`2026-11-21T10:00:00.000Z`).
public enum Timestamp {
    /// Formats a date.
    public static func rfc3339(_ date: Date) -> String {
        let totalMillis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = totalMillis / 1000
        var millis = totalMillis % 1000
        if millis < 0 { millis += 1000; seconds -= 1 }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        var bytes = [UInt8](repeating: 0, count: 24)
        func put(_ value: Int, _ at: Int, _ width: Int) {
            var value = value
            for i in stride(from: at + width - 1, through: at, by: -1) {
                bytes[i] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, 0, 4); bytes[4] = UInt8(ascii: "-")
        put(Int(parts.tm_mon) + 1, 5, 2); bytes[7] = UInt8(ascii: "-")
        put(Int(parts.tm_mday), 8, 2); bytes[10] = UInt8(ascii: "T")
        put(Int(parts.tm_hour), 11, 2); bytes[13] = UInt8(ascii: ":")
        put(Int(parts.tm_min), 14, 2); bytes[16] = UInt8(ascii: ":")
        put(Int(parts.tm_sec), 17, 2); bytes[19] = UInt8(ascii: ".")
        put(Int(millis), 20, 3); bytes[23] = UInt8(ascii: "Z")
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses what ``rfc3339(_:)`` writes (and whole seconds without a fraction).
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for i in range {
                guard bytes[i] >= 0x30, bytes[i] <= 0x39 else { return nil }
                value = value * 10 + Int(bytes[i] - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19) else { return nil }
        var millis = 0
        if bytes.count == 24, bytes[19] == UInt8(ascii: "."), let m = number(20..<23) { millis = m }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(seconds) + Double(millis) / 1000)
    }
}
