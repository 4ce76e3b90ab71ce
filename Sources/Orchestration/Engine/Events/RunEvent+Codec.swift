/// The one codec between typed event payloads and the `data` object of `events.jsonl` and the
/// `events` table (SPEC §3). The keys are written here and nowhere else.
extension RunEvent.Payload {
    /// The payload as its `data` object; nil for events without details (`step_started`).
    public var json: JSONValue? {
        switch self {
        case .runStarted(let start), .runResumed(let start):
            return .object([
                "plan_id": .string(start.planID),
                "steps": .int(start.steps),
                "max_concurrency": .int(start.maxConcurrency),
            ])
        case .stepStarted:
            return nil
        case .stepSubmitted(let jobID):
            return .object(["job_id": .string(jobID)])
        case .stepAttemptFailed(let end):
            return Self.json(end)
        case .stepSucceeded(let end), .stepFailed(let end):
            return end.map { Self.json($0) }
        case .stepRetry(let delay):
            return .object(["delay_sec": .double(delay)])
        case .stepSkipped(let reason):
            return .object(["reason": .string(reason)])
        case .stepCancelled(let reason, let end):
            var members: [JSONValue.Member] = [.init("reason", .string(reason))]
            // A torn-down attempt's exit code and signal; its error is the reason above.
            if let end, case .object(let attempt) = Self.json(end) { members += attempt.filter { $0.key != "error" } }
            return .object(members)
        case .runFinished(let end):
            return .object([
                "status": .string(end.status.rawValue),
                "exit_code": .int(Int(end.exitCode)),
                "summary": .object([
                    "total": .int(end.total),
                    "succeeded": .int(end.succeeded),
                    "failed": .int(end.failed),
                    "skipped": .int(end.skipped),
                    "cancelled": .int(end.cancelled),
                ]),
            ])
        }
    }

    /// A payload read back from an event's type and `data` (events written by this or an earlier
    /// release; a missing key reads as its default, as older events lack newer keys).
    public init(kind: RunEvent.Kind, json data: JSONValue?) {
        switch kind {
        case .runStarted, .runResumed:
            let start = RunStart(planID: data?["plan_id"]?.stringValue ?? "", steps: data?["steps"]?.intValue ?? 0,
                                 maxConcurrency: data?["max_concurrency"]?.intValue ?? 0)
            self = kind == .runStarted ? .runStarted(start) : .runResumed(start)
        case .stepStarted:
            self = .stepStarted
        case .stepSubmitted:
            self = .stepSubmitted(jobID: data?["job_id"]?.stringValue ?? "")
        case .stepAttemptFailed:
            self = .stepAttemptFailed(Self.attemptEnd(data) ?? AttemptEnd())
        case .stepRetry:
            self = .stepRetry(delaySeconds: data?["delay_sec"]?.doubleValue ?? 0)
        case .stepSucceeded:
            self = .stepSucceeded(Self.attemptEnd(data))
        case .stepFailed:
            self = .stepFailed(Self.attemptEnd(data))
        case .stepSkipped:
            self = .stepSkipped(reason: data?["reason"]?.stringValue ?? "")
        case .stepCancelled:
            let torn = data?["exit_code"] != nil || data?["signal"] != nil
            self = .stepCancelled(reason: data?["reason"]?.stringValue ?? "", attempt: torn ? Self.attemptEnd(data) : nil)
        case .runFinished:
            let summary = data?["summary"]
            self = .runFinished(RunEnd(
                status: data?["status"]?.stringValue.flatMap(RunStatus.init(rawValue:)) ?? .failed,
                exitCode: Int32(data?["exit_code"]?.intValue ?? 1),
                total: summary?["total"]?.intValue ?? 0, succeeded: summary?["succeeded"]?.intValue ?? 0,
                failed: summary?["failed"]?.intValue ?? 0, skipped: summary?["skipped"]?.intValue ?? 0,
                cancelled: summary?["cancelled"]?.intValue ?? 0))
        }
    }

    private static func json(_ end: AttemptEnd) -> JSONValue {
        var members: [JSONValue.Member] = [
            .init("exit_code", end.exitCode.map { .int(Int($0)) } ?? .null),
            .init("signal", end.signal.map { .int(Int($0)) } ?? .null),
            .init("timed_out", .bool(end.timedOut)),
        ]
        if end.engineLost { members.append(.init("engine_lost", .bool(true))) }
        if let error = end.error { members.append(.init("error", .string(error))) }
        if let jobID = end.jobID { members.append(.init("job_id", .string(jobID))) }
        // Secret values never reach events.jsonl or the events table: the store keeps them in
        // `step_outputs`, for the steps that use them.
        if !end.outputs.isEmpty {
            members.append(.init("outputs", .object(end.outputs.map { .init($0.name, .string($0.shownValue)) })))
        }
        return .object(members)
    }

    private static func attemptEnd(_ data: JSONValue?) -> AttemptEnd? {
        guard let data else { return nil }
        return AttemptEnd(exitCode: data["exit_code"]?.intValue.map(Int32.init), signal: data["signal"]?.intValue.map(Int32.init),
                          timedOut: data["timed_out"]?.boolValue ?? false, engineLost: data["engine_lost"]?.boolValue ?? false,
                          error: data["error"]?.stringValue, jobID: data["job_id"]?.stringValue,
                          outputs: (data["outputs"]?.objectValue ?? []).map { member in
                              let value = member.value.stringValue ?? ""
                              return StepOutput(name: member.key, value: value,
                                                isSecret: value == SecretMask.replacement || SecretMask.isSecretName(member.key))
                          })
    }
}
