import Foundation

/// What a failed run leaves for whoever debugs it: `runs/<id>/snapshot/` with the plan, its
/// variables, and for each failed step its last attempt's logs and the environment it ran with.
///
/// Values of variables and environment entries whose names contain `SECRET`, `TOKEN`,
/// `PASSWORD` or `KEY` (in any case) are replaced by `[redacted]`.
///
/// | file | content |
/// | --- | --- |
/// | `plan.json` | the plan as it was when the run started (secret-named values redacted) |
/// | `variables.json` | the effective variables (redacted) |
/// | `failures.json` | the failed steps: id, attempts, exit code, signal, error |
/// | `steps/<id>/env.json` | the step's environment (redacted) |
/// | `steps/<id>/<id>.<attempt>.out` / `.err` | the last attempt's output (when it wrote any) |
public enum FailureSnapshot {
    /// The folder of a run's snapshot, relative to the state folder.
    public static func relativePath(runID: String) -> String { "runs/\(runID)/snapshot" }

    /// Whether a variable's value must not be written down.
    public static func isSecret(_ name: String) -> Bool {
        let upper = name.uppercased()
        return ["SECRET", "TOKEN", "PASSWORD", "KEY"].contains { upper.contains($0) }
    }

    static func redacted(_ values: [String: String]) -> JSONValue {
        .object(values.sorted { $0.key < $1.key }.map { .init($0.key, .string(isSecret($0.key) ? "[redacted]" : $0.value)) })
    }

    /// The value with every string member whose key names a secret redacted, at any depth
    /// (`variables`, `globals.env`, a step's `env`).
    static func redactingSecrets(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(members.map { member in
                if case .string = member.value, isSecret(member.key) { return .init(member.key, .string("[redacted]")) }
                return .init(member.key, redactingSecrets(member.value))
            })
        case .array(let items):
            return .array(items.map(redactingSecrets))
        default:
            return value
        }
    }

    /// Writes the snapshot of a failed run.
    /// - Returns: the snapshot folder's absolute path.
    @discardableResult
    public static func write(report: RunReport, loaded: LoadedPlan, stateDirectory: StateDirectory,
                             baseEnvironment: [String: String] = ProcessInfo.processInfo.environment) throws(EngineError) -> String {
        let folder = relativePath(runID: report.runID)
        do {
            let plan = (try? StrictJSONParser.parse(loaded.source.bytes).toValue()).map(redactingSecrets)
            try stateDirectory.writeFileAtomically("\(folder)/plan.json",
                                                   plan.map { Array($0.serialized(pretty: true).utf8) } ?? loaded.source.bytes)
            try stateDirectory.writeFileAtomically("\(folder)/variables.json",
                                                   Array(redacted(loaded.plan.variables).serialized(pretty: true).utf8))
            let failed = report.steps.filter { $0.status == .failed }
            let failures: JSONValue = .array(failed.map { step in
                .object([
                    "id": .string(step.id),
                    "attempts": .int(step.attempts),
                    "exit_code": step.exitCode.map { .int(Int($0)) } ?? .null,
                    "signal": step.signal.map { .int(Int($0)) } ?? .null,
                    "timed_out": .bool(step.timedOut),
                    "error": step.error.map { .string($0) } ?? .null,
                ])
            })
            try stateDirectory.writeFileAtomically("\(folder)/failures.json", Array(failures.serialized(pretty: true).utf8))
            for step in failed {
                guard let index = loaded.graph.indexByID[step.id] else { continue }
                var environment = baseEnvironment
                if let command = loaded.plan.steps[index].processCommand {
                    for (name, value) in command.environment { environment[name] = value }
                }
                environment["OMNIBASE_RUN_ID"] = report.runID
                environment["OMNIBASE_STEP_ID"] = step.id
                environment["OMNIBASE_ATTEMPT"] = String(step.attempts)
                try stateDirectory.writeFileAtomically("\(folder)/steps/\(step.id)/env.json",
                                                       Array(redacted(environment).serialized(pretty: true).utf8))
                for suffix in ["out", "err"] {
                    let name = "\(step.id).\(step.attempts).\(suffix)"
                    let source = "\(stateDirectory.path)/runs/\(report.runID)/logs/\(name)"
                    guard let data = FileManager.default.contents(atPath: source) else { continue }
                    try stateDirectory.writeFileAtomically("\(folder)/steps/\(step.id)/\(name)", [UInt8](data))
                }
            }
        } catch {
            throw EngineError(error)
        }
        return "\(stateDirectory.path)/\(folder)"
    }
}
