import Foundation
import Orchestration

/// Runs the project's CI plan for a task, through the plan engine (``RunSession``), in the
/// task's worktree.
///
/// The CI plan is an ordinary plan file (SPEC §1). It is loaded for each run with these
/// `--var`-style variables, so its steps run in the worktree by using them:
///
/// | variable | value |
/// | --- | --- |
/// | `WORKSPACE` | the task's worktree (use `"globals": {"working_dir": "${WORKSPACE}"}`) |
/// | `TASK_ID`, `TASK_BRANCH`, `ROLE` | the task, its branch and role |
/// | `PROJECT_DIR` | the project folder |
///
/// Each run is a normal run in `runs.db` (labelled with the session and task), visible with
/// `runs list` / `runs show`.
public struct CIRunner: Sendable {
    /// The CI plan file.
    public let planPath: String
    /// The state folder (runs go to its `runs.db`, summaries to `agents/ci/`).
    public let stateDirectory: StateDirectory
    /// The project folder.
    public let projectDirectory: String

    /// Creates a runner.
    public init(planPath: String, stateDirectory: StateDirectory, projectDirectory: String) {
        self.planPath = planPath
        self.stateDirectory = stateDirectory
        self.projectDirectory = projectDirectory
    }

    /// Runs the CI plan for a task and writes its summary file.
    ///
    /// - Parameters:
    ///   - task: The task (its worktree, branch, role).
    ///   - session: The session id (a label of the run).
    /// - Returns: The verdict; a plan that no longer loads is a failed CI with the reason.
    /// - Throws: `CancellationError` when the calling task was cancelled (the run is stopped as
    ///   by SIGTERM and recorded cancelled); ``OrchestratorError`` when the state folder failed.
    public func run(task: TaskRecord, session: String) async throws -> CIResult {
        let folder: String
        do { folder = try stateDirectory.ensureSubdirectory("agents/ci/\(session)") } catch {
            throw OrchestratorError(store: error)
        }
        let variables = ["WORKSPACE": task.worktree, "TASK_ID": task.id, "TASK_BRANCH": task.branch, "ROLE": task.role,
                         "PROJECT_DIR": projectDirectory]
        let loaded: LoadedPlan
        do {
            loaded = try PlanLoader.load(path: planPath, overrides: variables)
        } catch {
            let path = folder + "/\(task.id)-invalid.log"
            let summary = "the CI plan does not load: \(error.message)"
            try? (summary + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return CIResult(passed: false, runID: nil, logPath: path, summary: summary)
        }
        let runSession: RunSession
        do { runSession = try RunSession(stateDirectory: stateDirectory.path) } catch {
            throw OrchestratorError(.stateFailed, error.message, exitCode: error.exitCode)
        }
        let (stops, stopper) = AsyncStream.makeStream(of: StopReason.self)
        let request = RunRequest(labels: ["agents_session": session, "agents_task": task.id])
        let report: RunReport
        do {
            report = try await withTaskCancellationHandler {
                try await runSession.start(loaded, request: request, stopRequests: stops)
            } onCancel: {
                stopper.yield(.terminate)
            }
        } catch {
            stopper.finish()
            if Task.isCancelled { throw CancellationError() }
            let engine = EngineError(error)
            throw OrchestratorError(.stateFailed, "the CI run of task \(task.id) failed to record: \(engine.message)",
                                    exitCode: engine.exitCode)
        }
        stopper.finish()
        if Task.isCancelled { throw CancellationError() }
        let passed = report.status == .succeeded
        let failedSteps = report.steps.filter { $0.status != .succeeded }
        let summary = passed
            ? "CI run \(report.runID) passed (\(report.steps.count) steps)"
            : "CI run \(report.runID) \(report.status.rawValue): " + failedSteps.map { step in
                "\(step.id) \(step.status.rawValue)" + (step.error.map { " (\($0))" } ?? "")
            }.joined(separator: "; ")
        let path = folder + "/\(task.id)-\(report.runID).log"
        try? describe(report, summary: summary).write(toFile: path, atomically: true, encoding: .utf8)
        return CIResult(passed: passed, runID: report.runID, logPath: path, summary: summary)
    }

    /// The summary file: the verdict, then each step that did not succeed with its log tails.
    private func describe(_ report: RunReport, summary: String) -> String {
        var text = summary + "\n"
        for step in report.steps where step.status != .succeeded {
            text += "\n== step \(step.id): \(step.status.rawValue)"
            if let code = step.exitCode { text += ", exit \(code)" }
            if let error = step.error { text += ": \(error)" }
            text += "\n"
            guard step.attempts > 0 else { continue }
            for stream in AttemptLog.Stream.allCases {
                let log = AttemptLog(stepID: step.id, attempt: step.attempts, stream: stream)
                if let tail = TextTail.read(path: stateDirectory.path(of: log, runID: report.runID), maxLines: 60) {
                    text += "-- std\(stream.rawValue) (last lines) --\n\(tail)\n"
                }
            }
        }
        return text
    }
}
