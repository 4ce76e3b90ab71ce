import Foundation

/// The result of a run, printed by `run`, `resume`, `replay` and `runs show` (SPEC §4).
public struct RunReport: Sendable {
    /// One step's line of the report.
    public struct StepReport: Sendable, Hashable {
        /// The step id.
        public var id: String
        /// Its status.
        public var status: StepStatus
        /// Attempts started (0 if it never started).
        public var attempts: Int
        /// The last attempt's exit code.
        public var exitCode: Int32?
        /// The signal that ended the last attempt.
        public var signal: Int32?
        /// Whether the last attempt timed out.
        public var timedOut: Bool
        /// When the first attempt started.
        public var startedAt: Date?
        /// When the step reached its final status (after an attempt).
        public var finishedAt: Date?
        /// Why it failed, was skipped or was cancelled.
        public var error: String?
        /// The last attempt's cluster job id (the Slurm executor); nil for local attempts.
        public var jobID: String?
        /// What the step wrote to `$OMNIBASE_OUTPUT` (a succeeded step), secret values shown as
        /// ``SecretMask/replacement`` (``StepOutput/shown``).
        public var outputs: [StepOutput] = []
        /// The step's `"if"` as written in the plan; nil when it has none.
        public var condition: String?
        /// The matrix step and combination the step is an expansion of; nil for other steps
        /// (and for a stored run whose plan snapshot was not read).
        public var matrix: MatrixInstance?

        /// The memberwise initializer, for the stages (the breaker-skipped components they add).
        package init(id: String, status: StepStatus, attempts: Int, exitCode: Int32?, signal: Int32?, timedOut: Bool,
                     startedAt: Date?, finishedAt: Date?, error: String?) {
            self.id = id
            self.status = status
            self.attempts = attempts
            self.exitCode = exitCode
            self.signal = signal
            self.timedOut = timedOut
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.error = error
        }

        /// `finishedAt - startedAt`, in the whole milliseconds the timestamps show (as stored).
        public var duration: Double? {
            guard let startedAt, let finishedAt else { return nil }
            return Timestamp.interval(from: startedAt, to: finishedAt)
        }
    }

    /// The run id.
    public var runID: String
    /// The plan's id.
    public var planID: String
    /// The run's status.
    public var status: RunStatus
    /// The exit code of the command that ran it (SPEC §5).
    public var exitCode: Int32
    /// When it started.
    public var startedAt: Date?
    /// When it finished.
    public var finishedAt: Date?
    /// Every step of the plan, in plan order.
    public var steps: [StepReport]
    /// A correlation id for logs and traces.
    public var traceID: String
    /// The stage, for stage orchestrators.
    public var stage: String?

    /// Counts per final status.
    public var summary: [StepStatus: Int] {
        var counts: [StepStatus: Int] = [:]
        for step in steps { counts[step.status, default: 0] += 1 }
        return counts
    }

    /// Sets each step's ``StepReport/matrix`` from the plan's steps (by id).
    public mutating func attachMatrices(from plan: Plan) {
        var byID: [String: MatrixInstance] = [:]
        for step in plan.steps { if let matrix = step.matrix { byID[step.id] = matrix } }
        guard !byID.isEmpty else { return }
        for index in steps.indices { steps[index].matrix = byID[steps[index].id] }
    }

    /// Wall time of the run, in the whole milliseconds the timestamps show (as stored): `run`
    /// and `runs show` print the same.
    public var duration: Double? {
        guard let startedAt, let finishedAt else { return nil }
        return Timestamp.interval(from: startedAt, to: finishedAt)
    }

    /// The canonical JSON of SPEC §4.
    public var json: JSONValue {
        let counts = summary
        var members: [JSONValue.Member] = [
            .init("run_id", .string(runID)),
            .init("plan_id", .string(planID)),
        ]
        if let stage { members.append(.init("stage", .string(stage))) }
        members += [
            .init("status", .string(status.rawValue)),
            // A live run has no exit code yet (0 would read as success), like its finish time.
            .init("exit_code", status == .pending || status == .running ? .null : .int(Int(exitCode))),
            .init("started_at", startedAt.map { .string(Timestamp.rfc3339($0)) } ?? .null),
            .init("finished_at", finishedAt.map { .string(Timestamp.rfc3339($0)) } ?? .null),
            .init("duration_sec", duration.map { .double(Self.rounded($0)) } ?? .null),
            .init("summary", .object([
                .init("total", .int(steps.count)),
                .init("succeeded", .int(counts[.succeeded] ?? 0)),
                .init("failed", .int(counts[.failed] ?? 0)),
                .init("skipped", .int(counts[.skipped] ?? 0)),
                .init("cancelled", .int(counts[.cancelled] ?? 0)),
            ])),
            .init("steps", .array(steps.map(Self.stepJSON))),
            .init("trace_id", .string(traceID)),
        ]
        return .object(members)
    }

    private static func stepJSON(_ step: StepReport) -> JSONValue {
        var members: [JSONValue.Member] = [
            .init("id", .string(step.id)),
            .init("status", .string(step.status.rawValue)),
            .init("attempts", .int(step.attempts)),
            .init("exit_code", step.exitCode.map { .int(Int($0)) } ?? .null),
            .init("signal", step.signal.map { .int(Int($0)) } ?? .null),
            .init("timed_out", .bool(step.timedOut)),
            .init("started_at", step.startedAt.map { .string(Timestamp.rfc3339($0)) } ?? .null),
            .init("finished_at", step.finishedAt.map { .string(Timestamp.rfc3339($0)) } ?? .null),
            .init("duration_sec", step.duration.map { .double(rounded($0)) } ?? .null),
            .init("error", step.error.map { .string($0) } ?? .null),
        ]
        // Only steps that ran as cluster jobs have the key (local runs print as before).
        if let jobID = step.jobID { members.append(.init("job_id", .string(jobID))) }
        // Only steps that wrote outputs have the key.
        if !step.outputs.isEmpty {
            members.append(.init("outputs", .object(step.outputs.map { .init($0.name, .string($0.shownValue)) })))
        }
        // Only steps with an "if" have the key.
        if let condition = step.condition { members.append(.init("if", .string(condition))) }
        // Only a matrix step's expansions have the key.
        if let matrix = step.matrix {
            members.append(.init("matrix", .object([
                .init("step", .string(matrix.step)),
                .init("values", .object(matrix.values.map { .init($0.key, .string($0.value)) })),
            ])))
        }
        return .object(members)
    }

    /// Milliseconds are the resolution of the timestamps.
    package static func rounded(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }
}
