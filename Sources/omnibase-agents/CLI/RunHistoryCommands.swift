import Foundation
import Orchestration
import Presentation

/// What `resume` and `replay` take: one run id, the values of its secret variables that were not
/// stored (`--var`), and the common options.
struct StoredRunArguments {
    let runID: String
    let secrets: [String: String]
    let executor: ExecutorKind?
    let keepGoing: Bool
    let synchronous: SQLiteDatabase.Synchronous
    let common: CommonOptions

    /// The options of `resume` and `replay`.
    static let sections = [
        OptionSection("Options:", [
            .repeatable("--var", "NAME=VALUE",
                        "The value of a secret variable of the run, which was not stored (repeatable; the run names the ones it needs)."),
            ExecutorKind.option("Where steps run (default: where the run ran; see README \"Executors\")."),
            ExecutorKind.keepGoingOption(),
            SQLiteDatabase.Synchronous.option(),
        ]),
        CommonOptions.section,
    ]

    init(_ arguments: ParsedArguments, command: String) throws(EngineError) {
        runID = try singleRunID(arguments, command: command)
        secrets = try arguments.variables()
        executor = try ExecutorKind.parse(arguments)
        keepGoing = arguments.flag("--keep-going")
        synchronous = try SQLiteDatabase.Synchronous.parse(arguments)
        common = try CommonOptions(arguments)
    }

    /// Runs `operation` on the state folder with SIGINT/SIGTERM as stop requests and progress
    /// (human format), prints the report, returns its exit code.
    func execute(resuming: Bool,
                 _ operation: @escaping @Sendable (RunSession, String, [String: String], AsyncStream<StopReason>,
                                                   [any RunObserver], ExecutorKind?, Bool) async throws(EngineError) -> RunReport)
        async throws(EngineError) -> Int32 {
        let session = try RunSession(stateDirectory: common.stateDirectory, synchronous: synchronous)
        let signals = SignalStopSource()
        defer { signals.finish() }
        for value in secrets.values { PrintMask.shared.add(SecretMask(values: [value])) }
        let progress = progressPrinter(session, resuming: resuming)
        let runID = self.runID
        let secrets = self.secrets
        let executor = self.executor
        let keepGoing = self.keepGoing
        let report = try await withProgress(progress) { () async throws(EngineError) -> RunReport in
            try await operation(session, runID, secrets, signals.requests, progress.map { [$0] } ?? [], executor, keepGoing)
        }
        if let store = try? RunStore(stateDirectory: session.stateDirectory, readOnly: true) {
            PrintMask.shared.addSecretOutputs(of: report.runID, store: store, plan: nil)
        }
        common.emit(json: report.json) { common.humanReport(report) }
        return report.exitCode
    }

    /// Progress for the stored run's plan, when it can be read (otherwise the operation itself
    /// reports what is wrong).
    private func progressPrinter(_ session: RunSession, resuming: Bool) -> ProgressPrinter? {
        guard common.format == .human,
              let store = try? RunStore(stateDirectory: session.stateDirectory, readOnly: true),
              let record = try? store.run(runID), let source = try? record.source.supplying(secrets).get(),
              let loaded = try? PlanLoader.load(source) else { return nil }
        PrintMask.shared.add(loaded.plan.secretMask())
        // A resumed run keeps its succeeded steps: they count as done from the start.
        let done = resuming ? ((try? store.steps(runID))?.filter { $0.status == .succeeded }.count ?? 0) : 0
        return common.progressPrinter(for: loaded, request: RunRequest(json: record.options, stage: record.stage),
                                      session: session, alreadyDone: done)
    }
}

/// `resume RUN_ID`: continue a failed, cancelled or crashed run.
struct ResumeCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "resume", arguments: "RUN_ID", abstract: "Continue a failed, cancelled or crashed run (same run id).",
        discussion: """
        Re-runs every step of the run that did not succeed; succeeded steps are kept and new events are \
        appended to the same run. A run whose engine died is taken over: the processes the dead engine left \
        are torn down first. The values of secret --var variables are not stored: give them again with --var.
        """,
        sections: StoredRunArguments.sections,
        epilogue: "Exit codes: as for 'run'; 3 unknown run, 75 the run is held by another live engine.")

    let arguments: StoredRunArguments

    init(parsing arguments: ParsedArguments) throws(EngineError) {
        self.arguments = try StoredRunArguments(arguments, command: "resume")
    }

    func run() async throws(EngineError) -> Int32 {
        try await arguments.execute(resuming: true) { session, runID, secrets, stops, observers, executor, keepGoing throws(EngineError) in
            try await session.resume(runID: runID, secrets: secrets, observers: observers, stopRequests: stops,
                                     executor: executor, keepGoing: keepGoing)
        }
    }
}

/// `replay RUN_ID`: run a stored run again as a new run.
struct ReplayCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "replay", arguments: "RUN_ID", abstract: "Re-execute a run from its stored snapshot as a new run.",
        discussion: """
        Runs the plan snapshot and variables stored with RUN_ID again, as a new run. The values of secret \
        --var variables are not stored: give them again with --var.
        """,
        sections: StoredRunArguments.sections)

    let arguments: StoredRunArguments

    init(parsing arguments: ParsedArguments) throws(EngineError) {
        self.arguments = try StoredRunArguments(arguments, command: "replay")
    }

    func run() async throws(EngineError) -> Int32 {
        try await arguments.execute(resuming: false) { session, runID, secrets, stops, observers, executor, keepGoing throws(EngineError) in
            try await session.replay(runID: runID, secrets: secrets, observers: observers, stopRequests: stops,
                                     executor: executor, keepGoing: keepGoing)
        }
    }
}

/// `runs list|show|events`: the run history, one nested command per action.
struct RunsCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "runs", abstract: "History and progress: runs list [--status S], runs show RUN_ID, runs events RUN_ID, runs prune.",
        sections: [CommonOptions.section],
        epilogue: "Exit codes: 0, 2 bad arguments, 3 unknown run.",
        subcommands: [List.self, Show.self, Events.self, Prune.self])

    let action: any CLICommand

    init(parsing arguments: ParsedArguments) throws(EngineError) { action = try CLI.subcommand(of: Self.self, arguments) }
    func validate() throws(EngineError) { try action.validate() }
    func run() async throws(EngineError) -> Int32 { try await action.run() }

    /// The state folder's store, read-only; the run's secrets (placeholders) join the print mask.
    static func openStore(_ common: CommonOptions, runID: String?) throws(EngineError) -> (StateDirectory, RunStore) {
        let directory: StateDirectory
        do { directory = try StateDirectory(path: common.stateDirectory, creating: false) } catch { throw EngineError(error) }
        let store = try RunStore(stateDirectory: directory, readOnly: true)
        if let runID, let record = try store.run(runID) {
            let loaded = try? PlanLoader.load(record.source.withPlaceholders())
            if let loaded { PrintMask.shared.add(loaded.plan.secretMask()) }
            PrintMask.shared.addSecretOutputs(of: runID, store: store, plan: loaded?.plan)
        }
        return (directory, store)
    }

    /// The one run id and the common options of `runs show` and `runs events`.
    static func runArguments(_ arguments: ParsedArguments, action: String,
                             jsonLines: Bool = false) throws(EngineError) -> (String, CommonOptions) {
        (try arguments.positionals(count: 1) { _ in "runs \(action) needs one run id" }[0],
         try CommonOptions(arguments, jsonLines: jsonLines))
    }

    static func unknownRun(_ runID: String, _ common: CommonOptions) -> EngineError {
        EngineError(.unknownReference, "no run \(runID) in \(common.stateDirectory)")
    }

    /// `runs list`: runs, newest first.
    struct List: CLICommand {
        static let configuration = CommandConfiguration(
            name: "list", abstract: "Runs, newest first.",
            sections: [OptionSection("Options:", [
                .choice("--status", among: RunStatus.allCases.map(\.rawValue), "Only the runs with this status."),
                .integer("--limit", "N", 1...1_000_000, "At most N runs (default 1000; stderr says when there are more)."),
            ])])

        let status: RunStatus?
        let limit: Int
        let common: CommonOptions

        init(parsing arguments: ParsedArguments) throws(EngineError) {
            guard arguments.positionals.isEmpty else { throw usage("runs list takes no run id") }
            status = try arguments.choice("--status").flatMap(RunStatus.init(rawValue:))
            limit = try arguments.integer("--limit") ?? 1000
            common = try CommonOptions(arguments)
        }

        func run() async throws(EngineError) -> Int32 {
            var runs: [RunStore.RunRecord]
            let store: RunStore?
            do {
                let opened = try RunsCommand.openStore(common, runID: nil).1
                (store, runs) = (opened, try opened.runs(status: status, limit: limit + 1))
            } catch where error.code == .unknownReference {
                // No history yet (no folder, no runs.db): no runs, as in a history with none.
                (store, runs) = (nil, [])
            }
            // A list cut at the limit says so (it stopped at 1,000 without a word).
            if runs.count > limit {
                runs.removeLast(runs.count - limit)
                StandardStreams.printError("omnibase-agents: note: more than \(limit) runs\(status.map { " \($0.rawValue)" } ?? ""); "
                                           + "these are the newest \(limit) (--limit N lists more)\n")
            }
            var items: [JSONValue] = []
            var lines: [String] = []
            for run in runs {
                let report = try store?.report(run.runID)
                let counts = report?.summary ?? [:]
                let live = run.isLive
                items.append(RunHistoryJSON.listEntry(runID: run.runID, planID: run.planID, status: run.status, live: live,
                                                      startedAt: run.startedAt, finishedAt: run.finishedAt, report: report))
                let done = (report?.steps.count ?? 0) - (counts[.pending] ?? 0) - (counts[.running] ?? 0)
                // Within the terminal (at most 100 columns): a long plan id is cut with an ellipsis;
                // the resume hint of a run whose engine is gone has a line of its own.
                let fixed = "\(run.runID)  \(run.status.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  "
                    + "\(done)/\(counted(report?.steps.count ?? 0, "step"))  \(run.startedAt ?? "-")  "
                lines.append(truncate(fixed + TerminalText.escaped(run.planID), to: common.style.width))
                if !run.status.isFinal && !live { lines.append("  engine gone: resume \(run.runID)") }
            }
            common.emit(json: .object(["runs": .array(items)])) {
                lines.isEmpty ? "No runs.\n" : lines.joined(separator: "\n") + "\n"
            }
            return 0
        }
    }

    /// `runs show RUN_ID`: one run's report, or its progress while it is live.
    struct Show: CLICommand {
        static let configuration = CommandConfiguration(
            name: "show", arguments: "RUN_ID", abstract: "One run's report; on a live run, its progress (done/total, running steps).")

        let runID: String
        let common: CommonOptions

        init(parsing arguments: ParsedArguments) throws(EngineError) {
            (runID, common) = try RunsCommand.runArguments(arguments, action: "show")
        }

        func run() async throws(EngineError) -> Int32 {
            let (directory, store) = try RunsCommand.openStore(common, runID: runID)
            guard let record = try store.run(runID), var report = try store.report(runID) else { throw RunsCommand.unknownRun(runID, common) }
            // Matrix groups come from the plan snapshot (secrets withheld: placeholders do for that).
            if let loaded = try? PlanLoader.load(record.source.withPlaceholders()) { report.attachMatrices(from: loaded.plan) }
            let live = record.isLive
            let snapshotPath = "\(directory.path)/\(FailureSnapshot.relativePath(runID: runID))"
            let snapshot = FileManager.default.fileExists(atPath: snapshotPath) ? snapshotPath : nil
            let json = RunHistoryJSON.show(record: record, report: report, snapshotPath: snapshot)
            common.emit(json: json) {
                // Log tails only when every secret value is known to mask them with.
                var text = record.source.withheldSecrets.isEmpty
                    ? common.humanReport(report, showingOutputs: true)
                    : HumanReport.render(report, style: common.style, showingOutputs: true)
                if let snapshot { text += "failure snapshot: \(snapshot)\n" }
                if !record.status.isFinal {
                    let counts = report.summary
                    let done = report.steps.count - (counts[.pending] ?? 0) - (counts[.running] ?? 0)
                    let running = report.steps.filter { $0.status == .running }.map { TerminalText.escaped($0.id) }
                    text += "progress: \(done)/\(report.steps.count) done; running: \(running.isEmpty ? "none" : running.joined(separator: ", "))"
                    text += live ? "\n" : " (no live engine: 'omnibase-agents resume \(runID)' continues it)\n"
                }
                return text
            }
            return 0
        }

        func progressJSON(_ report: RunReport) -> JSONValue {
            let counts = report.summary
            let done = report.steps.count - (counts[.pending] ?? 0) - (counts[.running] ?? 0)
            return .object([
                "done": .int(done),
                "total": .int(report.steps.count),
                "running": .array(report.steps.filter { $0.status == .running }.map { .string($0.id) }),
            ])
        }
    }

    /// `runs events RUN_ID`: one run's events, in order.
    struct Events: CLICommand {
        static let configuration = CommandConfiguration(
            name: "events", arguments: "RUN_ID",
            abstract: "One run's events, in order (from runs.db, the source of truth): --format json is one document "
                + "{\"events\": [...]}, --format jsonl one event per line.")

        let runID: String
        let common: CommonOptions

        init(parsing arguments: ParsedArguments) throws(EngineError) {
            (runID, common) = try RunsCommand.runArguments(arguments, action: "events", jsonLines: true)
        }

        func run() async throws(EngineError) -> Int32 {
            let (_, store) = try RunsCommand.openStore(common, runID: runID)
            guard try store.run(runID) != nil else { throw RunsCommand.unknownRun(runID, common) }
            let events = try store.events(runID)
            switch common.format {
            case .yaml:
                StandardStreams.print(YAMLWriter.serialize(PrintMask.shared.apply(.object(["events": .array(events.map(\.json))]))), terminator: "")
            case .json:
                StandardStreams.print(PrintMask.shared.apply(.object(["events": .array(events.map(\.json))])).serialized(pretty: true))
            case .jsonl:
                var bytes: [UInt8] = []
                for event in events {
                    PrintMask.shared.apply(event.json).write(into: &bytes, pretty: false)
                    bytes.append(UInt8(ascii: "\n"))
                }
                StandardStreams.write(bytes)
            case .human:
                for event in events {
                    let step = event.stepID.map { " \($0)" } ?? ""
                    let attempt = event.attempt.map { " #\($0)" } ?? ""
                    let data = event.data.map { " \(PrintMask.shared.apply($0).serialized())" } ?? ""
                    StandardStreams.print(Self.truncateLine("\(event.seq) \(Timestamp.rfc3339(event.timestamp)) \(event.kind.rawValue)\(step)\(attempt)\(data)"))
                }
            }
            return 0
        }

        static func truncateLine(_ line: String) -> String {
            line.count <= 100 ? line : String(line.prefix(97)) + "..."
        }
    }
}

extension RunsCommand {
    /// `runs prune --older-than AGE | --keep N`: deletes finished runs, rows and folders together.
    struct Prune: CLICommand {
        static let configuration = CommandConfiguration(
            name: "prune", abstract: "Delete finished runs: their database rows, logs, events and snapshots.",
            discussion: """
            Deletes the finished runs (succeeded, failed, cancelled) that --older-than and --keep select (with \
            both, a run goes when it is older and not among the kept ones); never a live run, nor an unfinished \
            one waiting for resume, nor one an engine is resuming. Prints the runs it removed.
            """,
            sections: [OptionSection("Options:", [
                .single("--older-than", "AGE", "Runs that finished longer ago than AGE: 30d, 12h, 90m, 45s."),
                .integer("--keep", "N", 0...1_000_000_000, "Keep the N newest finished runs."),
            ])])

        let criteria: RunPruner.Criteria
        let common: CommonOptions

        init(parsing arguments: ParsedArguments) throws(EngineError) {
            guard arguments.positionals.isEmpty else { throw usage("runs prune takes no run id") }
            let age = try arguments.value("--older-than").map(Self.seconds)
            let keep = try arguments.integer("--keep")
            guard age != nil || keep != nil else { throw usage("runs prune needs --older-than AGE or --keep N") }
            criteria = RunPruner.Criteria(olderThan: age, keep: keep)
            common = try CommonOptions(arguments)
        }

        /// `30d`, `12h`, `90m`, `45s` in seconds.
        static func seconds(_ text: String) throws(EngineError) -> Double {
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
            guard let unit = text.last, let scale = units[unit], let count = Int(text.dropLast()), count >= 0 else {
                throw usage("--older-than takes a whole number and a unit (s, m, h, d), such as 30d; got '\(text)'")
            }
            return Double(count) * scale
        }

        func run() async throws(EngineError) -> Int32 {
            let directory: StateDirectory
            do { directory = try StateDirectory(path: common.stateDirectory) } catch { throw EngineError(error) }
            let outcome = try RunPruner.prune(stateDirectory: directory, criteria: criteria)
            let json = JSONValue.object([
                "pruned": .array(outcome.pruned.map { run in
                    .object(["run_id": .string(run.runID), "plan_id": .string(run.planID), "status": .string(run.status.rawValue),
                             "finished_at": run.finishedAt.map(JSONValue.string) ?? .null])
                }),
                "skipped": .array(outcome.skipped.map { .object(["run_id": .string($0.runID), "reason": .string($0.reason)]) }),
                "leftover_folders": .array(outcome.leftoverFolders.map(JSONValue.string)),
            ])
            common.emit(json: json) {
                var lines = outcome.pruned.map { run in
                    truncate("removed \(run.runID)  \(run.status.rawValue)  \(run.finishedAt ?? "-")  "
                             + TerminalText.escaped(run.planID), to: common.style.width)
                }
                lines += outcome.skipped.map { "kept \($0.runID): \($0.reason)" }
                lines += outcome.leftoverFolders.map { "removed the folder of \($0) (its rows were already deleted)" }
                lines.append("Pruned \(counted(outcome.pruned.count, "run")).")
                return lines.joined(separator: "\n") + "\n"
            }
            return 0
        }
    }
}

/// The one run id a command takes.
func singleRunID(_ arguments: ParsedArguments, command: String) throws(EngineError) -> String {
    let positionals = arguments.positionals
    guard positionals.count == 1 else {
        throw usage(positionals.isEmpty ? "\(command) needs a run id" : "\(command) takes one run id, got \(positionals.count)")
    }
    return positionals[0]
}
