import Foundation

/// Folds a run's events into its ``RunReport``.
///
/// The same fold serves a live run and a stored one (`runs show`), so both print the same thing.
public struct RunReportBuilder: Sendable {
    private var report: RunReport
    private var indexByID: [String: Int]

    /// Starts a report for a plan's steps, all `pending`.
    /// - Parameter matrices: each step's matrix origin, in the order of `stepIDs` (empty: none).
    public init(runID: String, planID: String, stepIDs: [String], traceID: String,
                indexByID: [String: Int]? = nil, matrices: [MatrixInstance?] = []) {
        report = RunReport(
            runID: runID, planID: planID, status: .pending, exitCode: 0, startedAt: nil, finishedAt: nil,
            steps: stepIDs.map {
                RunReport.StepReport(id: $0, status: .pending, attempts: 0, exitCode: nil, signal: nil,
                                     timedOut: false, startedAt: nil, finishedAt: nil, error: nil)
            },
            traceID: traceID)
        self.indexByID = indexByID ?? Dictionary(uniqueKeysWithValues: stepIDs.enumerated().map { ($1, $0) })
        for (index, matrix) in zip(report.steps.indices, matrices) { report.steps[index].matrix = matrix }
    }

    /// Attaches each step's `"if"` text (by plan position; nil = none) to its line of the report.
    public mutating func setConditions(_ texts: [String?]) {
        for (index, text) in texts.enumerated() where index < report.steps.count { report.steps[index].condition = text }
    }

    /// The report as of the events applied so far.
    public var current: RunReport { report }

    /// Applies one event whose step's index is known (no lookup by id).
    mutating func apply(_ event: RunEvent, stepIndex: Int?) {
        guard let stepIndex, event.stepID != nil else { return apply(event) }
        Self.applyStepEvent(event, to: &report.steps[stepIndex])
    }

    /// Applies one event.
    public mutating func apply(_ event: RunEvent) {
        switch event.payload {
        case .runStarted, .runResumed:
            if report.startedAt == nil { report.startedAt = event.timestamp }
            report.status = .running
            report.finishedAt = nil
        case .runFinished(let end):
            report.finishedAt = event.timestamp
            report.status = end.status
            report.exitCode = end.exitCode
        default:
            guard let id = event.stepID, let index = indexByID[id] else { return }
            Self.applyStepEvent(event, to: &report.steps[index])
        }
    }

    private static func applyStepEvent(_ event: RunEvent, to step: inout RunReport.StepReport) {
        let end = event.payload.attemptEnd
        func takeOutcome() {
            step.exitCode = end?.exitCode
            step.signal = end?.signal
            step.timedOut = end?.timedOut ?? false
            step.jobID = end?.jobID
        }
        switch event.payload {
        case .stepStarted:
            step.status = .running
            step.attempts = max(step.attempts, event.attempt ?? step.attempts + 1)
            if step.startedAt == nil { step.startedAt = event.timestamp }
            step.finishedAt = nil
            step.error = nil
            step.outputs = []
        case .stepAttemptFailed:
            takeOutcome()
            step.error = end?.error
        case .stepSubmitted(let jobID):
            step.jobID = jobID
        case .stepRetry:
            step.status = .pending
        case .stepSucceeded:
            takeOutcome()
            step.status = .succeeded
            step.finishedAt = event.timestamp
            step.error = nil
            // Masked here too: the live report of a run holds the engine's own events.
            step.outputs = end?.outputs.map(\.shown) ?? []
        case .stepFailed:
            takeOutcome()
            step.status = .failed
            step.finishedAt = event.timestamp
            step.error = end?.error ?? step.error
        case .stepSkipped(let reason):
            step.status = .skipped
            step.error = reason
        case .stepCancelled(let reason, let torn):
            if torn != nil { takeOutcome() }
            step.status = .cancelled
            if step.startedAt != nil { step.finishedAt = event.timestamp }
            step.error = reason
        case .runStarted, .runFinished, .runResumed:
            break
        }
    }
}
