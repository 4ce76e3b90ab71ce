import Foundation
import Orchestration

/// The Ralph loop ("Ralph Wiggum" loop) of one task:
///
/// 1. Prepare the worktree (once): branch `agent/<role>/<task>` from the integration branch,
///    dependencies' branches merged in.
/// 2. Run the agent command in the worktree (``LocalProcess``: its own process group, the
///    role's time limit, stdout/stderr to `agents/logs/<session>/<task>/<n>.out|.err`).
/// 3. Decide (``IterationVerdict``): exit 42 blocks the task on the bus until its events
///    arrive; done (check and/or promise) commits the work and runs CI; otherwise wait
///    `retry_interval` on the injected clock and go again, up to `max_retries` iterations; a
///    worktree unchanged for `stall_after` iterations ends the task as `stalled`.
/// 4. A failed CI run sends the task back to 2 with `CI_LOG` set.
///
/// Every transition is committed to the store before the next step, so `--resume` continues
/// from the last one: a finished task is never redone; a task that was working or blocked when
/// the previous engine ended runs a new iteration, under the next number and with `RESUMED=1`
/// (what its earlier iterations started in the background was torn down with that engine, so
/// an event it was waiting for may never come unless it asks again). The awaited events that
/// arrived meanwhile are handed to that iteration as a wake-up (`CI_EVENT`). A wake-up's events
/// count as seen only once the iteration they woke has ended, so an iteration lost in a crash
/// gets them again.
extension RoleAgent {
    func runLoop(_ assignment: TaskAssignment) async -> TaskOutcome {
        let task = assignment.task
        var record = assignment.record
        do {
            if !record.worktreeReady {
                setPhase(task.id, .preparing)
                record = try await settings.store.updateTask(task.id) {
                    $0.state = .working
                    $0.phase = .preparing
                    $0.reason = nil
                    if $0.startedAt == nil { $0.startedAt = Timestamp.rfc3339(Date()) }
                }
                do {
                    try await settings.workspace.prepare(task: record, dependencyBranches: assignment.dependencyBranches)
                } catch let error as AgentSpawnError {
                    return try await finish(task.id, .failed(error.message))
                }
                record = try await settings.store.updateTask(task.id) { $0.worktreeReady = true }
            }
            await settings.observers.emit(.taskStarted(task: task.id, role: task.role, branch: record.branch,
                                                       worktree: record.worktree))
            if record.fingerprint == nil {
                let fingerprint = await settings.workspace.fingerprint(record.worktree)
                record = try await settings.store.updateTask(task.id) { $0.fingerprint = fingerprint }
            }
            var wake: BusWakeup?
            var completing = record.phase == .committing || record.phase == .ci
            // Iterations ran under an earlier engine: the next one is told it is a resumption.
            var resumed = record.iteration > 0
            if resumed && !completing {
                wake = try await pendingWakeup(task, record)
            }
            while true {
                try Task.checkCancellation()
                if completing {
                    completing = false
                    if let outcome = try await complete(task, &record) { return outcome }
                    continue
                }
                let next = try await iterate(task, &record, wake: wake, resumed: resumed)
                resumed = false
                switch next {
                case .finished(let outcome):
                    return outcome
                case .blocked:
                    guard let woken = try await waitOnBus(task, &record) else {
                        return try await finish(task.id, .blockedTimeout(timeoutReason(task)))
                    }
                    wake = woken
                case .completing:
                    if let outcome = try await complete(task, &record) { return outcome }
                    wake = nil
                case .again:
                    wake = nil
                    try await settings.clock.sleep(for: settings.retryInterval, tolerance: nil)
                }
            }
        } catch is CancellationError {
            return .interrupted
        } catch {
            let reason = "\(error)"
            if let outcome = try? await finish(task.id, .failed(reason)) { return outcome }
            return .failed(reason)
        }
    }

    /// What the loop does after an iteration.
    private enum Next {
        case finished(TaskOutcome)
        case blocked
        case completing
        case again
    }

    /// One iteration: the agent, then the check, the promise and the fingerprint, then the verdict.
    private func iterate(_ task: TaskSpec, _ record: inout TaskRecord, wake: BusWakeup?, resumed: Bool) async throws -> Next {
        let iteration = record.iteration + 1
        let session = settings.session
        let logs: String
        do { logs = try settings.stateDirectory.ensureSubdirectory("agents/logs/\(session)/\(task.id)") } catch {
            throw OrchestratorError(store: error)
        }
        // A role on Slurm runs the iteration as a job, its logs named as the executor names them.
        let slurm = settings.slurmRunners[task.role]
        let attempt = AttemptContext(runID: session, stepID: task.id, attempt: iteration, killGrace: .seconds(5),
                                     logDirectory: logs)
        let stdout = slurm == nil ? "\(logs)/\(iteration).out" : attempt.stdoutPath
        let stderr = slurm == nil ? "\(logs)/\(iteration).err" : attempt.stderrPath
        let promptFile = try writePrompt(task, record: record)
        var variables = [
            "TASK_ID": task.id, "TASK_TITLE": task.title, "TASK_PROMPT": task.prompt, "ITERATION": String(iteration),
            "WORKSPACE": record.worktree, "ROLE": task.role, "PROMPT_FILE": promptFile,
            "PROJECT_DIR": settings.projectDirectory, "CI_LOG": "",
        ]
        if record.ciStatus == "failed", let log = record.ciLog { variables["CI_LOG"] = log }
        var environment = settings.environment
        for (name, value) in variables where !(name == "CI_LOG" && value.isEmpty) { environment[name] = value }
        environment["TASK_BRANCH"] = record.branch
        environment["MAX_RETRIES"] = String(task.maxRetries ?? settings.maxRetries)
        if resumed { environment["RESUMED"] = "1" }
        if let wake {
            environment["CI_EVENTS"] = JSONValue.array(wake.events.map(\.json)).serialized()
            environment["CI_EVENT"] = wake.events.last?.name
            environment["CI_EVENT_DATA"] = wake.events.last?.data?.serialized() ?? ""
        }
        for (name, value) in role.agent.environment {
            environment[name] = (try? VariableSubstitution.substitute(value, variables: variables)) ?? value
        }

        setPhase(task.id, .agent)
        record = try await settings.store.beginIteration(task: task.id, iteration: iteration, stdout: stdout, stderr: stderr) {
            $0.iteration = iteration
            $0.state = .working
            $0.phase = .agent
            $0.awaiting = nil
            if $0.startedAt == nil { $0.startedAt = Timestamp.rfc3339(Date()) }
        }
        await settings.observers.emit(.iterationStarted(task: task.id, iteration: iteration))

        let command = (try? VariableSubstitution.substitute(role.agent.command, variables: variables)) ?? role.agent.command
        let arguments = role.agent.arguments.map { (try? VariableSubstitution.substitute($0, variables: variables)) ?? $0 }
        let agent: ProcessOutcome
        if let slurm {
            let step = Step(id: task.id, action: .process(ProcessCommand(
                command: command, arguments: arguments, workingDirectory: record.worktree, environment: environment)),
                timeout: role.agent.timeout)
            agent = Self.processOutcome(await slurm.run(step, context: attempt))
        } else {
            agent = await LocalProcess.run(ProcessSpec(
                command: command, arguments: arguments, environment: environment, workingDirectory: record.worktree,
                stdoutPath: stdout, stderrPath: stderr, timeout: role.agent.timeout, killGrace: .seconds(5)))
        }
        if agent.cancelled || Task.isCancelled {
            try await endInterrupted(task.id, iteration, &record)
            throw CancellationError()
        }
        var exitStatus: Int32?
        if case .exited(let status) = agent.termination, !agent.timedOut { exitStatus = status }
        var agentDescription = agent.timedOut ? "timed out and was stopped" : agent.termination.description
        if exitStatus != 0, let last = TextTail.read(path: stderr, maxLines: 1, maxBytes: 512) {
            agentDescription += ": " + last
        }
        if case .failedToStart(let reason) = agent.termination {
            let why = "the agent command could not start: \(reason)"
            record = try await settings.store.endIteration(task: task.id, iteration: iteration, outcome: "failed",
                                                           exitCode: nil, detail: why) {
                $0.budgetUsed += 1
                if let wake { $0.eventCursor = max($0.eventCursor, wake.cursor) }
            }
            await settings.observers.emit(.iterationFinished(task: task.id, iteration: iteration, verdict: "failed", detail: why))
            return .finished(try await finish(task.id, .failed(why)))
        }

        if exitStatus == IterationVerdict.blockedExitCode {
            let detail = IterationVerdict.blocked.detail
            record = try await settings.store.endIteration(task: task.id, iteration: iteration, outcome: "blocked",
                                                           exitCode: exitStatus, detail: detail) {
                $0.state = .blocked
                $0.phase = .blocked
                $0.awaiting = task.waitFor
                if let wake { $0.eventCursor = max($0.eventCursor, wake.cursor) }
            }
            await settings.observers.emit(.iterationFinished(task: task.id, iteration: iteration, verdict: "blocked", detail: detail))
            return .blocked
        }

        var checkPassed: Bool?
        if let check = task.doneWhen {
            setPhase(task.id, .check)
            let outcome = await LocalProcess.run(ProcessSpec(
                command: (try? VariableSubstitution.substitute(check.command, variables: variables)) ?? check.command,
                arguments: check.arguments.map { (try? VariableSubstitution.substitute($0, variables: variables)) ?? $0 },
                environment: environment, workingDirectory: record.worktree,
                stdoutPath: "\(logs)/\(iteration).check.out", stderrPath: "\(logs)/\(iteration).check.err",
                timeout: check.timeout, killGrace: .seconds(2)))
            if outcome.cancelled || Task.isCancelled {
                try await endInterrupted(task.id, iteration, &record)
                throw CancellationError()
            }
            checkPassed = outcome.succeeded
        }
        let promiseFound = task.completionPromise.map { CompletionPromise.isPresent($0, inFile: stdout) }
        let fingerprint = await settings.workspace.fingerprint(record.worktree)
        let changed = fingerprint == nil || fingerprint != record.fingerprint
        let streak = changed ? 0 : record.unchangedStreak + 1
        let budget = record.budgetUsed + 1
        let verdict = IterationVerdict.decide(.init(
            exitStatus: exitStatus, agentDescription: exitStatus == 0 ? "" : agentDescription, checkPassed: checkPassed, promiseFound: promiseFound,
            promise: task.completionPromise, budgetUsed: budget, maxRetries: task.maxRetries ?? settings.maxRetries,
            unchangedStreak: streak, stallAfter: task.stallAfter ?? settings.stallAfter))
        record = try await settings.store.endIteration(task: task.id, iteration: iteration, outcome: verdict.name,
                                                       exitCode: exitStatus, detail: verdict.detail) {
            $0.budgetUsed = budget
            $0.unchangedStreak = streak
            $0.fingerprint = fingerprint
            if let wake { $0.eventCursor = max($0.eventCursor, wake.cursor) }
            switch verdict {
            case .done: $0.phase = .committing
            case .notYet: $0.phase = .waiting
            default: break
            }
        }
        await settings.observers.emit(.iterationFinished(task: task.id, iteration: iteration, verdict: verdict.name,
                                                         detail: verdict.detail))
        switch verdict {
        case .done: return .completing
        case .notYet: return .again
        case .failed(let why): return .finished(try await finish(task.id, .failed(why)))
        case .stalled(let why): return .finished(try await finish(task.id, .stalled(why)))
        case .blocked: return .blocked
        }
    }

    /// Commits the task's work and runs its CI. Returns the final outcome, or nil when CI failed
    /// and the loop goes on (after `retry_interval`).
    /// A Slurm job's verdict in the terms of a local process: exited or killed when Slurm says
    /// so, timed out or cancelled as the engine ended it, "could not start" otherwise (`sbatch`
    /// failed, or the job's record was lost).
    static func processOutcome(_ outcome: AttemptOutcome) -> ProcessOutcome {
        let termination: ProcessOutcome.Termination
        if let signal = outcome.signal {
            termination = .signaled(signal)
        } else if let code = outcome.exitCode {
            termination = .exited(code)
        } else {
            termination = .failedToStart(outcome.error ?? "the Slurm job did not run")
        }
        return ProcessOutcome(termination: termination, timedOut: outcome.timedOut, cancelled: outcome.result == .cancelled)
    }

    private func complete(_ task: TaskSpec, _ record: inout TaskRecord) async throws -> TaskOutcome? {
        setPhase(task.id, .committing)
        record = try await settings.store.updateTask(task.id) { $0.phase = .committing }
        // Work committed on another branch, or on a detached HEAD, would never be merged: the
        // task fails, saying where its work is, rather than pass with nothing on its branch.
        if let departure = await settings.workspace.departure(of: record.worktree, from: record.branch) {
            return try await finish(task.id, .failed("the agent left the task's branch \(record.branch) (HEAD is \(departure) "
                                                     + "in \(record.worktree)): its work is not on the branch, so it cannot be merged"))
        }
        let message = "\(task.id): \(task.title)\n\nWork of role \(task.role), iteration \(record.iteration) of the Ralph loop (omnibase-agents)."
        let head = try await settings.workspace.commitAll(record.worktree, message: message)
        guard let ci = settings.ci else { return try await finish(task.id, .done) }

        setPhase(task.id, .ci)
        record = try await settings.store.updateTask(task.id) {
            $0.phase = .ci
            $0.ciStatus = "running"
        }
        await settings.observers.emit(.ciStarted(task: task.id))
        let result = try await ci.run(task: record, session: settings.session)
        let data: JSONValue = .object([
            "run_id": result.runID.map { .string($0) } ?? .null,
            "commit": .string(head),
            "summary": .string(result.summary),
            "log": .string(result.logPath),
        ])
        try await settings.bus.publish(result.passed ? "ci.passed" : "ci.failed", task: task.id, data: data)
        await settings.observers.emit(.ciFinished(task: task.id, passed: result.passed, runID: result.runID, detail: result.summary))
        if result.passed {
            record = try await settings.store.updateTask(task.id) {
                $0.ciStatus = "passed"
                $0.ciRunID = result.runID
                $0.ciLog = result.logPath
            }
            return try await finish(task.id, .done)
        }
        let fingerprint = await settings.workspace.fingerprint(record.worktree)
        record = try await settings.store.updateTask(task.id) {
            $0.ciStatus = "failed"
            $0.ciRunID = result.runID
            $0.ciLog = result.logPath
            $0.phase = .waiting
            $0.fingerprint = fingerprint
        }
        let budget = task.maxRetries ?? settings.maxRetries
        if record.budgetUsed >= budget {
            return try await finish(task.id, .failed("CI failed after the last allowed iteration (max_retries \(budget)): \(result.summary)"))
        }
        try await settings.clock.sleep(for: settings.retryInterval, tolerance: nil)
        return nil
    }

    /// Blocks the task on the bus until its condition holds; records the wait and the wake-up.
    ///
    /// - Returns: The wake-up, or nil when the task's `wait_timeout_sec` (or its role's) passed
    ///   first.
    private func waitOnBus(_ task: TaskSpec, _ record: inout TaskRecord) async throws -> BusWakeup? {
        setPhase(task.id, .blocked)
        if record.state != .blocked || record.awaiting == nil {
            record = try await settings.store.updateTask(task.id) {
                $0.state = .blocked
                $0.phase = .blocked
                $0.awaiting = task.waitFor
            }
        }
        await settings.observers.emit(.taskBlocked(task: task.id, awaiting: task.waitFor))
        settings.slots?.park(task.id)
        let condition = BusWaitCondition(task: task.id, names: task.waitFor)
        guard let wake = try await wait(for: condition, after: record.eventCursor, limit: waitTimeout(task)) else { return nil }
        // Still blocked (phase and record) until the role has a slot for it again.
        await settings.slots?.reclaim(task.id)
        try Task.checkCancellation()
        // The cursor moves past these events when the iteration they wake has ended.
        record = try await settings.store.updateTask(task.id) {
            $0.state = .working
            $0.phase = nil
            $0.awaiting = nil
        }
        await settings.observers.emit(.taskWoken(task: task.id, events: wake.events.map(\.name)))
        return wake
    }

    /// The bus wait, ended by `limit` on the injected clock when there is one.
    private func wait(for condition: BusWaitCondition, after cursor: Int64, limit: Duration?) async throws -> BusWakeup? {
        let bus = settings.bus
        guard let limit else { return try await bus.wait(for: condition, after: cursor) }
        let clock = settings.clock
        return try await withThrowingTaskGroup(of: BusWakeup?.self) { group in
            group.addTask { try await bus.wait(for: condition, after: cursor) }
            group.addTask {
                try await clock.sleep(for: limit, tolerance: nil)
                return nil
            }
            // The first to end decides; the other is cancelled (a wait cancelled this way
            // leaves the events after the cursor where they are).
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// The task's `wait_timeout_sec`, else its role's.
    private func waitTimeout(_ task: TaskSpec) -> Duration? { task.waitTimeout ?? role.waitTimeout }

    /// The reason of a `blocked_timeout`: how long the task waited, for what.
    private func timeoutReason(_ task: TaskSpec) -> String {
        let limit = waitTimeout(task) ?? .zero
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
        let what = task.waitFor.isEmpty ? "an event for task \(task.id)" : task.waitFor.joined(separator: ", ")
        let origin = task.waitTimeout == nil ? "role \(task.role)'s wait_timeout_sec" : "wait_timeout_sec"
        return "blocked for \(Self.secondsText(seconds)) s (\(origin)) waiting for \(what), which did not arrive"
    }

    static func secondsText(_ seconds: Double) -> String {
        seconds == seconds.rounded() && abs(seconds) < 1e15 ? String(Int64(seconds)) : String(seconds)
    }

    /// On resume: the awaited events that are already stored after the task's cursor (published
    /// while no engine ran, or while the iteration they woke was lost), as a wake-up; nil when
    /// there are none.
    private func pendingWakeup(_ task: TaskSpec, _ record: TaskRecord) async throws -> BusWakeup? {
        let events = try await settings.store.adoptAndFetchEvents(after: record.eventCursor)
        guard let hit = BusWaitCondition(task: task.id, names: task.waitFor).match(events) else { return nil }
        return BusWakeup(events: hit, cursor: events.last?.seq ?? record.eventCursor)
    }

    /// Records a final outcome.
    private func finish(_ id: String, _ outcome: TaskOutcome) async throws -> TaskOutcome {
        guard let state = outcome.state else { return outcome }
        let reason = outcome.reason
        try await settings.store.updateTask(id) {
            $0.state = state
            $0.phase = nil
            $0.awaiting = nil
            $0.reason = reason
            $0.finishedAt = Timestamp.rfc3339(Date())
        }
        await settings.observers.emit(.taskFinished(task: id, state: state, reason: reason))
        return outcome
    }

    private func endInterrupted(_ id: String, _ iteration: Int, _ record: inout TaskRecord) async throws {
        record = try await settings.store.endIteration(task: id, iteration: iteration, outcome: "interrupted", exitCode: nil,
                                                       detail: "the session was stopped") { _ in }
        await settings.observers.emit(.iterationFinished(task: id, iteration: iteration, verdict: "interrupted",
                                                         detail: "the session was stopped"))
    }

    /// Writes the task's prompt file (title, prompt, how to finish, the last CI failure).
    private func writePrompt(_ task: TaskSpec, record: TaskRecord) throws -> String {
        var text = "# \(task.id): \(task.title)\n\n\(task.prompt)\n\n"
        text += "You work in the git worktree \(record.worktree) on branch \(record.branch).\n"
        if let check = task.doneWhen {
            text += "The task is done when this command exits 0 in the worktree: \(([check.command] + check.arguments).joined(separator: " "))\n"
        }
        if let promise = task.completionPromise {
            text += "When the task is done, print \(CompletionPromise.tag(promise)) on a line of its own.\n"
        }
        if !task.waitFor.isEmpty {
            text += "If you cannot go on until \(task.waitFor.joined(separator: ", ")) happened, exit with status 42.\n"
        }
        if record.ciStatus == "failed", let log = record.ciLog, let ciText = try? String(contentsOfFile: log, encoding: .utf8) {
            text += "\n## The last CI run failed\n\n```\n\(ciText)\n```\n"
        }
        let relative = "agents/prompts/\(settings.session)/\(task.id).md"
        do {
            try settings.stateDirectory.writeFileAtomically(relative, Array(text.utf8))
        } catch {
            throw OrchestratorError(store: error)
        }
        return settings.stateDirectory.path + "/" + relative
    }
}
