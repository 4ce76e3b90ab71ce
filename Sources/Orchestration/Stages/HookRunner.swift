import Foundation
import Orchestration

/// How one hook ended.
public struct HookResult: Sendable {
    /// `pre` or `post`.
    public enum Phase: String, Sendable, Hashable {
        /// Before the stage's components.
        case pre
        /// After them.
        case post
    }

    /// When it ran.
    public var phase: Phase
    /// The hook's name.
    public var name: String
    /// What ran.
    public var argv: [String]
    /// `succeeded`, `failed` or `skipped` (not run: an earlier pre hook failed, or the stage was
    /// interrupted).
    public var status: StepStatus
    /// The exit code, if it exited.
    public var exitCode: Int32?
    /// Why it failed or was skipped.
    public var error: String?
    /// Wall time in seconds, if it ran.
    public var duration: Double?
    /// Its standard output in the state folder, if it wrote any.
    public var stdoutPath: String?
    /// Its standard error in the state folder, if it wrote any.
    public var stderrPath: String?

    /// The result as JSON.
    public var json: JSONValue {
        .object([
            "phase": .string(phase.rawValue),
            "name": .string(name),
            "argv": .array(argv.map { .string($0) }),
            "status": .string(status.rawValue),
            "exit_code": exitCode.map { .int(Int($0)) } ?? .null,
            "duration_sec": duration.map { .double(RunReport.rounded($0)) } ?? .null,
            "error": error.map { .string($0) } ?? .null,
            "stdout": stdoutPath.map { .string($0) } ?? .null,
            "stderr": stderrPath.map { .string($0) } ?? .null,
        ])
    }
}

/// Runs a stage's hooks one after the other, through the engine's own process layer
/// (``LocalProcess``: own process group, timeout with SIGTERM then SIGKILL to the group), with
/// their output in `runs/<run_id>/hooks/<phase>.<n>.<name>.out|.err` of the state folder.
///
/// Hooks are not steps of the stage's plan: post hooks must run whatever the components did,
/// which a DAG edge cannot express. Hooks get `OMNIBASE_STAGE`, `OMNIBASE_RUN_ID`,
/// `OMNIBASE_HOOK` (`pre`/`post`) and, for post hooks, `OMNIBASE_STAGE_STATUS`.
struct HookRunner {
    let stage: Stage
    let runID: String
    let registryDirectory: String
    let environment: [String: String]
    let stateDirectory: StateDirectory
    let stops: StopFanout

    /// Runs hooks in order. With `stopOnFailure` (pre hooks), the hooks after a failure are
    /// reported skipped. A stop request tears the running hook down and skips the rest.
    func run(_ hooks: [Registry.Hook], phase: HookResult.Phase, stopOnFailure: Bool,
             extraEnvironment: [String: String] = [:]) async throws(EngineError) -> [HookResult] {
        guard !hooks.isEmpty else { return [] }
        let folder: String
        do { folder = try stateDirectory.ensureSubdirectory("runs/\(runID)/hooks") } catch { throw EngineError(error) }
        var results: [HookResult] = []
        var blocked: String?
        for (index, hook) in hooks.enumerated() {
            let argv = [hook.command] + hook.arguments
            if let blocked {
                results.append(HookResult(phase: phase, name: hook.name, argv: argv, status: .skipped, error: blocked))
                continue
            }
            if let reason = stops.reason {
                blocked = "stage interrupted by \(reason.signalName)"
                results.append(HookResult(phase: phase, name: hook.name, argv: argv, status: .skipped, error: blocked))
                continue
            }
            var env = environment
            for (name, value) in hook.environment { env[name] = value }
            for (name, value) in extraEnvironment { env[name] = value }
            env["OMNIBASE_STAGE"] = stage.rawValue
            env["OMNIBASE_RUN_ID"] = runID
            env["OMNIBASE_HOOK"] = phase.rawValue
            let base = "\(folder)/\(phase.rawValue).\(index + 1).\(hook.name)"
            let timeout = hook.timeoutSeconds.map { Duration.seconds($0) }
            let spec = ProcessSpec(command: hook.command, arguments: hook.arguments, environment: env,
                                   workingDirectory: resolve(hook.workingDirectory), stdoutPath: base + ".out",
                                   stderrPath: base + ".err", timeout: timeout)
            let started = Date()
            let outcome = await runInterruptibly(spec)
            let attempt = LocalStepRunner.attemptOutcome(outcome, timeout: timeout)
            var result = HookResult(phase: phase, name: hook.name, argv: argv,
                                    status: attempt.result == .succeeded ? .succeeded : .failed,
                                    exitCode: attempt.exitCode, error: attempt.error,
                                    duration: Date().timeIntervalSince(started),
                                    stdoutPath: Self.existing(base + ".out"), stderrPath: Self.existing(base + ".err"))
            if outcome.cancelled {
                result.status = .cancelled
                result.error = "interrupted"
                blocked = "stage interrupted by \(stops.reason?.signalName ?? "a stop request")"
            } else if result.status == .failed && stopOnFailure {
                blocked = "\(phase.rawValue) hook \"\(hook.name)\" failed"
            }
            results.append(result)
        }
        return results
    }

    /// Runs the process, tearing it down (as cancellation does) when a stop is requested.
    private func runInterruptibly(_ spec: ProcessSpec) async -> ProcessOutcome {
        let requests = stops.subscribe()
        return await withTaskGroup(of: ProcessOutcome?.self) { group in
            group.addTask { await LocalProcess.run(spec) }
            group.addTask {
                for await _ in requests { return nil }
                // The stream ended without a stop: wait for the process (cancelled when it ends).
                try? await Task.sleep(for: .seconds(365 * 24 * 3600))
                return nil
            }
            var outcome: ProcessOutcome?
            while let next = await group.next() {
                if let next {
                    outcome = next
                    group.cancelAll()
                    break
                }
                // A stop request: cancel the process task; its outcome comes next.
                group.cancelAll()
            }
            return outcome ?? ProcessOutcome(termination: .failedToStart("interrupted"), cancelled: true)
        }
    }

    private static func existing(_ path: String) -> String? {
        FileManager.default.fileExists(atPath: path) ? path : nil
    }

    private func resolve(_ path: String?) -> String {
        guard let path else { return registryDirectory }
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: registryDirectory, isDirectory: true))
            .standardizedFileURL.path
    }
}
