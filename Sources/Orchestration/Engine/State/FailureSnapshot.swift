import Foundation

/// What a failed run leaves for whoever debugs it: `runs/<id>/snapshot/` with the plan, its
/// variables, and for each failed step the tail of its last attempt's logs and the environment
/// it ran with. It is meant to be shared, so secrets are masked (SPEC section 10, ``SecretMask``):
/// the values of secret names become `***` wherever they are, and every occurrence of a secret
/// value in any file is replaced by `***`.
///
/// | file | content |
/// | --- | --- |
/// | `plan.json` | the plan as it was when the run started (secret-named values masked) |
/// | `variables.json` | the effective variables (masked) |
/// | `failures.json` | the failed steps: id, attempts, exit code, signal, error |
/// | `steps/<id>/env.json` | the step's environment (masked) |
/// | `steps/<id>/<id>.<attempt>.out` / `.err` | the last ``logTailBytes`` of the last attempt's output (when it wrote any) |
///
/// A log longer than ``logTailBytes`` is cut at a line start within its last ``logTailBytes``,
/// and the copy starts with one line that says so:
/// `[omnibase: the first 299000000 of 300000000 bytes were cut; the whole log is runs/<id>/logs/<name>]`.
/// Memory use does not depend on the log's size.
package enum FailureSnapshot {
    /// The folder of a run's snapshot, relative to the state folder.
    public static func relativePath(runID: String) -> String { "runs/\(runID)/snapshot" }

    /// The most bytes of each log that a snapshot keeps (its end).
    public static let logTailBytes = 1 << 20

    static func redacted(_ values: [String: String], isSecret: (String) -> Bool, mask: SecretMask) -> JSONValue {
        .object(values.sorted { $0.key < $1.key }.map {
            .init($0.key, .string(isSecret($0.key) ? SecretMask.replacement : mask.apply($0.value)))
        })
    }

    /// The value with every string member whose key names a secret masked, at any depth
    /// (`variables`, `globals.env`, a step's `env`), and every secret value masked.
    static func redactingSecrets(_ value: JSONValue, isSecret: (String) -> Bool, mask: SecretMask) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(members.map { member in
                if case .string = member.value, isSecret(member.key) { return .init(member.key, .string(SecretMask.replacement)) }
                return .init(member.key, redactingSecrets(member.value, isSecret: isSecret, mask: mask))
            })
        case .array(let items):
            return .array(items.map { redactingSecrets($0, isSecret: isSecret, mask: mask) })
        case .string(let text):
            return .string(mask.apply(text))
        default:
            return value
        }
    }

    /// The end of a log file: at most `maxBytes`, starting at a line start when the log was cut
    /// (unless the kept part holds no line break), with the note of what was cut first.
    /// - Returns: nil when the log is absent, not a regular file (a symbolic link is not
    ///   followed) or empty.
    static func logTail(path: String, displayPath: String, maxBytes: Int) -> [UInt8]? {
        guard let (bytes, size) = FileTail.read(path: path, maxBytes: maxBytes) else { return nil }
        let done = bytes.count
        guard size > done else { return bytes }
        // Cut: start after the first line break (the partial line would be half a line), or
        // else after any partial UTF-8 sequence.
        var start = 0
        if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")), newline < bytes.count - 1 {
            start = newline + 1
        } else {
            while start < bytes.count, bytes[start] & 0xC0 == 0x80 { start += 1 }
        }
        let cut = size - done + start
        let note = "[omnibase: the first \(cut) of \(size) bytes were cut; the whole log is \(displayPath)]\n"
        return Array(note.utf8) + bytes[start...]
    }

    /// Writes the snapshot of a failed run.
    /// - Returns: the snapshot folder's absolute path.
    /// - Parameters:
    ///   - mask: the run's secret values (by default the plan's, ``Plan/secretMask(environment:)``).
    @discardableResult
    public static func write(report: RunReport, loaded: LoadedPlan, stateDirectory: StateDirectory,
                             baseEnvironment: [String: String] = ProcessInfo.processInfo.environment,
                             mask: SecretMask? = nil) throws(EngineError) -> String {
        let folder = relativePath(runID: report.runID)
        let mask = mask ?? loaded.plan.secretMask(environment: baseEnvironment)
        let plan = loaded.plan
        do {
            let planJSON = (try? StrictJSONParser.parse(loaded.source.bytes).toValue())
                .map { redactingSecrets($0, isSecret: plan.isSecret, mask: mask) }
            try stateDirectory.writeFileAtomically("\(folder)/plan.json",
                                                   planJSON.map { Array($0.serialized(pretty: true).utf8) }
                                                       ?? mask.apply(loaded.source.bytes))
            try stateDirectory.writeFileAtomically("\(folder)/variables.json",
                                                   Array(redacted(plan.variables, isSecret: plan.isSecret, mask: mask)
                                                       .serialized(pretty: true).utf8))
            let failed = report.steps.filter { $0.status == .failed }
            let failures: JSONValue = .array(failed.map { step in
                .object([
                    "id": .string(step.id),
                    "attempts": .int(step.attempts),
                    "exit_code": step.exitCode.map { .int(Int($0)) } ?? .null,
                    "signal": step.signal.map { .int(Int($0)) } ?? .null,
                    "timed_out": .bool(step.timedOut),
                    "error": step.error.map { .string(mask.apply($0)) } ?? .null,
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
                                                       Array(redacted(environment, isSecret: plan.isSecret, mask: mask)
                                                           .serialized(pretty: true).utf8))
                for stream in AttemptLog.Stream.allCases {
                    let log = AttemptLog(stepID: step.id, attempt: step.attempts, stream: stream)
                    let name = log.fileName
                    let relative = log.relativePath(runID: report.runID)
                    guard let tail = logTail(path: "\(stateDirectory.path)/\(relative)", displayPath: relative,
                                             maxBytes: logTailBytes) else { continue }
                    try stateDirectory.writeFileAtomically("\(folder)/steps/\(step.id)/\(name)", mask.apply(tail))
                }
            }
        } catch {
            throw EngineError(error)
        }
        return "\(stateDirectory.path)/\(folder)"
    }
}
