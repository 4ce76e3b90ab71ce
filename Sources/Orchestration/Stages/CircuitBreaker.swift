import Foundation
import Orchestration

/// One component's circuit breaker (SPEC §6): a pure value, so its rules are tested without
/// processes or clocks.
///
/// | state | when | a stage run |
/// | --- | --- | --- |
/// | closed | fewer than `failure_threshold` failures in a row | starts the component |
/// | open | it reached the threshold less than `cooldown_sec` ago | skips it, with the reason and time left |
/// | half-open | the cooldown has passed | starts it once, without retries: success closes, failure opens again |
///
/// A failure is a component that ended `failed` (after its retries); `skipped` and `cancelled`
/// components leave the breaker as it was.
public struct CircuitBreaker: Sendable, Hashable {
    /// The state at one instant.
    public enum State: Sendable, Hashable {
        /// Components run normally.
        case closed
        /// Not started; `remaining` seconds until the trial.
        case open(remaining: Double)
        /// One trial run is allowed.
        case halfOpen

        /// `closed`, `open` or `half_open`.
        public var name: String {
            switch self {
            case .closed: "closed"
            case .open: "open"
            case .halfOpen: "half_open"
            }
        }
    }

    /// The invocation that claimed a half-open circuit's one trial (SPEC §6: "then one trial run
    /// decides"): the others skip the component while it holds the claim.
    public struct TrialClaim: Sendable, Hashable {
        /// The process that claimed it: its pid, start time and boot, so a claim of a process that
        /// is gone (killed with SIGKILL, say) is recognised as stale and taken over.
        public var holder: EngineIdentity
        /// The run the trial is part of.
        public var runID: String
        /// When it was claimed.
        public var claimedAt: Date

        /// Creates a claim.
        public init(holder: EngineIdentity, runID: String, claimedAt: Date) {
            self.holder = holder
            self.runID = runID
            self.claimedAt = claimedAt
        }
    }

    /// Failed invocations in a row.
    public var consecutiveFailures: Int
    /// When the circuit opened (nil while closed).
    public var openedAt: Date?
    /// The last failure's reason, e.g. `exited with code 1`.
    public var lastError: String?
    /// The run of the last recorded outcome.
    public var lastRunID: String?
    /// The claim on the trial of a half-open circuit, until the trial's outcome is recorded (or
    /// its invocation ends without one).
    public var trial: TrialClaim?

    /// Creates a breaker; the default is closed with no failures.
    public init(consecutiveFailures: Int = 0, openedAt: Date? = nil, lastError: String? = nil, lastRunID: String? = nil,
                trial: TrialClaim? = nil) {
        self.consecutiveFailures = consecutiveFailures
        self.openedAt = openedAt
        self.lastError = lastError
        self.lastRunID = lastRunID
        self.trial = trial
    }

    /// The claim on the trial held by another invocation than run `runID`, if its process is alive.
    public func trialHeld(notBy runID: String?) -> TrialClaim? {
        guard let trial, trial.runID != runID, trial.holder.isAlive else { return nil }
        return trial
    }

    /// The state at `now`.
    public func state(at now: Date, settings: BreakerSettings) -> State {
        guard let openedAt else { return .closed }
        let remaining = openedAt.addingTimeInterval(settings.cooldownSeconds).timeIntervalSince(now)
        return remaining > 0 ? .open(remaining: remaining) : .halfOpen
    }

    /// Records how an invocation of the component ended.
    /// - Parameters:
    ///   - succeeded: whether it succeeded (a failure otherwise).
    ///   - error: the failure's reason.
    ///   - runID: the run it was part of (its claim on the trial, if any, ends).
    ///   - now: when it ended.
    ///   - settings: the threshold.
    public mutating func record(succeeded: Bool, error: String?, runID: String, at now: Date, settings: BreakerSettings) {
        lastRunID = runID
        if trial?.runID == runID { trial = nil }
        if succeeded {
            consecutiveFailures = 0
            openedAt = nil
            lastError = nil
            return
        }
        consecutiveFailures += 1
        lastError = error
        // A failed trial (or any failure while open) opens the circuit again for a full cooldown.
        if openedAt != nil || consecutiveFailures >= settings.failureThreshold { openedAt = now }
    }

    /// Why an open circuit's component is not started, for reports.
    public func skipReason(at now: Date, settings: BreakerSettings) -> String {
        let remaining: Double
        if case .open(let left) = state(at: now, settings: settings) { remaining = left } else { remaining = 0 }
        let last = lastError.map { " (last: \($0))" } ?? ""
        return "circuit open after \(consecutiveFailures) consecutive failure\(consecutiveFailures == 1 ? "" : "s")\(last); "
            + "next trial in \(Int(remaining.rounded(.up)))s"
    }

    /// Why a half-open circuit's component is not started: another invocation runs its trial.
    public func trialSkipReason(_ claim: TrialClaim) -> String {
        let last = lastError.map { " (last: \($0))" } ?? ""
        return "circuit half-open after \(consecutiveFailures) consecutive failure\(consecutiveFailures == 1 ? "" : "s")\(last); "
            + "its one trial runs in another invocation (\(claim.holder), run \(claim.runID))"
    }

    /// A sentence about a state other than closed.
    func reason(_ state: State, at now: Date, settings: BreakerSettings) -> String? {
        switch state {
        case .closed: return nil
        case .open: return skipReason(at: now, settings: settings)
        case .halfOpen:
            if let claim = trialHeld(notBy: nil) { return trialSkipReason(claim) }
            let last = lastError.map { " (last: \($0))" } ?? ""
            return "cooldown over after \(consecutiveFailures) consecutive failures\(last); the next run is one trial"
        }
    }

    /// The breaker as JSON for `registry inspect` and reports.
    public func json(at now: Date, settings: BreakerSettings?) -> JSONValue {
        guard let settings else {
            return .object(["state": "disabled", "consecutive_failures": .int(consecutiveFailures)])
        }
        let state = state(at: now, settings: settings)
        var remaining: JSONValue = .null
        if case .open(let left) = state { remaining = .double((left * 1000).rounded() / 1000) }
        return .object([
            "state": .string(state.name),
            "consecutive_failures": .int(consecutiveFailures),
            "failure_threshold": .int(settings.failureThreshold),
            "cooldown_sec": .double(settings.cooldownSeconds),
            "opened_at": openedAt.map { .string(Timestamp.rfc3339($0)) } ?? .null,
            "remaining_sec": remaining,
            "reason": reason(state, at: now, settings: settings).map { .string($0) } ?? .null,
            "last_error": lastError.map { .string($0) } ?? .null,
            "last_run_id": lastRunID.map { .string($0) } ?? .null,
            "trial": trialHeld(notBy: nil).map { .object(["pid": .int(Int($0.holder.pid)), "run_id": .string($0.runID)]) } ?? .null,
        ])
    }
}
