import Foundation
import Orchestration

/// What `resume` and `replay` take: one run id and the common options.
struct StoredRunArguments {
    let runID: String
    let common: CommonOptions

    init(_ arguments: [String], command: String) throws(EngineError) {
        let scanner = try ArgumentScanner(arguments, valueOptions: CommonOptions.valueOptions, flags: CommonOptions.flags)
        runID = try singleRunID(scanner, command: command)
        common = try CommonOptions(scanner)
    }

    /// Runs `operation` on the state folder with SIGINT/SIGTERM as stop requests and progress
    /// (human format), prints the report, returns its exit code.
    func execute(resuming: Bool,
                 _ operation: @escaping @Sendable (RunSession, String, AsyncStream<StopReason>, [any RunObserver])
                    async throws(EngineError) -> RunReport) async throws(EngineError) -> Int32 {
        let session = try RunSession(stateDirectory: common.stateDirectory)
        let signals = SignalStopSource()
        defer { signals.finish() }
        let progress = progressPrinter(session, resuming: resuming)
        let runID = self.runID
        let report = try await withProgress(progress) { () async throws(EngineError) -> RunReport in
            try await operation(session, runID, signals.requests, progress.map { [$0] } ?? [])
        }
        common.emit(json: report.json) { HumanReport.render(report, style: common.style) }
        return report.exitCode
    }

    /// Progress for the stored run's plan, when it can be read (otherwise the operation itself
    /// reports what is wrong).
    private func progressPrinter(_ session: RunSession, resuming: Bool) -> ProgressPrinter? {
        guard common.format == .human,
              let store = try? RunStore(stateDirectory: session.stateDirectory, readOnly: true),
              let record = try? store.run(runID), let loaded = try? PlanLoader.load(record.source) else { return nil }
        // A resumed run keeps its succeeded steps: they count as done from the start.
        let done = resuming ? ((try? store.steps(runID))?.filter { $0.status == .succeeded }.count ?? 0) : 0
        return common.progressPrinter(for: loaded, request: RunRequest(json: record.options, stage: record.stage),
                                      session: session, alreadyDone: done)
    }
}

/// `resume RUN_ID`: continue a failed, cancelled or crashed run.
struct ResumeCommand: CLICommand {
    static let name = "resume"
    static let abstract = "Continue a failed, cancelled or crashed run (same run id)."
    static let help = """
    Usage: omnibase-agents resume RUN_ID [options]

    Re-runs every step of the run that did not succeed; succeeded steps are kept and new events
    are appended to the same run. A run whose engine died is taken over: the processes the dead
    engine left are torn down first.
    \(CommonOptions.help)

    Exit codes: as for 'run'; 3 unknown run, 75 the run is held by another live engine.

    """

    let arguments: StoredRunArguments

    init(arguments: [String]) throws(EngineError) {
        self.arguments = try StoredRunArguments(arguments, command: Self.name)
    }

    func run() async throws(EngineError) -> Int32 {
        try await arguments.execute(resuming: true) { session, runID, stops, observers throws(EngineError) in
            try await session.resume(runID: runID, observers: observers, stopRequests: stops)
        }
    }
}

/// `replay RUN_ID`: run a stored run again as a new run.
struct ReplayCommand: CLICommand {
    static let name = "replay"
    static let abstract = "Re-execute a run from its stored snapshot as a new run."
    static let help = """
    Usage: omnibase-agents replay RUN_ID [options]

    Runs the plan snapshot and variables stored with RUN_ID again, as a new run.
    \(CommonOptions.help)

    """

    let arguments: StoredRunArguments

    init(arguments: [String]) throws(EngineError) {
        self.arguments = try StoredRunArguments(arguments, command: Self.name)
    }

    func run() async throws(EngineError) -> Int32 {
        try await arguments.execute(resuming: false) { session, runID, stops, observers throws(EngineError) in
            try await session.replay(runID: runID, observers: observers, stopRequests: stops)
        }
    }
}

/// `runs list|show|events`: the run history.
struct RunsCommand: CLICommand {
    static let name = "runs"
    static let abstract = "History and progress: runs list [--status S], runs show RUN_ID, runs events RUN_ID."
    static let help = """
    Usage: omnibase-agents runs list [--status pending|running|succeeded|failed|cancelled] [--limit N]
           omnibase-agents runs show RUN_ID
           omnibase-agents runs events RUN_ID

    list    Runs, newest first.
    show    One run's report; on a live run, its progress (done/total, running steps).
    events  One run's events, in order (from runs.db, the source of truth).
    \(CommonOptions.help)

    Exit codes: 0, 2 bad arguments, 3 unknown run.

    """

    enum Action: String { case list, show, events }

    let action: Action
    let runID: String?
    let status: RunStatus?
    let limit: Int
    let common: CommonOptions

    init(arguments: [String]) throws(EngineError) {
        let scanner = try ArgumentScanner(arguments, valueOptions: CommonOptions.valueOptions.union(["--status", "--limit"]),
                                          flags: CommonOptions.flags)
        var positionals = scanner.remainingPositionals
        guard !positionals.isEmpty else { throw usage("runs needs an action: list, show RUN_ID or events RUN_ID") }
        let word = positionals.removeFirst()
        guard let action = Action(rawValue: word) else {
            let hint = Suggestion.closest(to: word, among: ["list", "show", "events"]).map { " (did you mean '\($0)'?)" } ?? ""
            throw usage("unknown runs action '\(word)'\(hint); use list, show or events")
        }
        self.action = action
        switch action {
        case .list:
            guard positionals.isEmpty else { throw usage("runs list takes no run id") }
            runID = nil
        case .show, .events:
            guard positionals.count == 1 else { throw usage("runs \(word) needs one run id") }
            runID = positionals[0]
        }
        status = try scanner.choice("--status", among: RunStatus.allCases.map(\.rawValue)).flatMap(RunStatus.init(rawValue:))
        limit = try scanner.integer("--limit", range: 1...1_000_000) ?? 1000
        common = try CommonOptions(scanner)
    }

    func run() async throws(EngineError) -> Int32 {
        let directory: StateDirectory
        do { directory = try StateDirectory(path: common.stateDirectory) } catch { throw EngineError(error) }
        let store = try RunStore(stateDirectory: directory, readOnly: true)
        switch action {
        case .list:
            let runs = try store.runs(status: status, limit: limit)
            var items: [JSONValue] = []
            var lines: [String] = []
            for run in runs {
                let report = try store.report(run.runID)
                let counts = report?.summary ?? [:]
                let live = run.isLive
                items.append(RunHistoryJSON.listEntry(runID: run.runID, planID: run.planID, status: run.status, live: live,
                                                      startedAt: run.startedAt, finishedAt: run.finishedAt, report: report))
                let done = (report?.steps.count ?? 0) - (counts[.pending] ?? 0) - (counts[.running] ?? 0)
                lines.append("\(run.runID)  \(run.status.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  "
                             + "\(done)/\(report?.steps.count ?? 0) steps  \(run.startedAt ?? "-")  \(run.planID)"
                             + (run.status.isFinal || live ? "" : "  (engine gone: resume \(run.runID))"))
            }
            common.emit(json: .object(["runs": .array(items)])) {
                lines.isEmpty ? "No runs.\n" : lines.joined(separator: "\n") + "\n"
            }
        case .show:
            let runID = self.runID!
            guard let record = try store.run(runID), let report = try store.report(runID) else { throw unknownRun(runID) }
            let live = record.isLive
            let snapshotPath = "\(directory.path)/\(FailureSnapshot.relativePath(runID: runID))"
            let snapshot = FileManager.default.fileExists(atPath: snapshotPath) ? snapshotPath : nil
            let json = RunHistoryJSON.show(record: record, report: report, snapshotPath: snapshot)
            common.emit(json: json) {
                var text = HumanReport.render(report, style: common.style)
                if let snapshot { text += "failure snapshot: \(snapshot)\n" }
                if !record.status.isFinal {
                    let counts = report.summary
                    let done = report.steps.count - (counts[.pending] ?? 0) - (counts[.running] ?? 0)
                    let running = report.steps.filter { $0.status == .running }.map(\.id)
                    text += "progress: \(done)/\(report.steps.count) done; running: \(running.isEmpty ? "none" : running.joined(separator: ", "))"
                    text += live ? "\n" : " (no live engine: 'omnibase-agents resume \(runID)' continues it)\n"
                }
                return text
            }
        case .events:
            let runID = self.runID!
            guard try store.run(runID) != nil else { throw unknownRun(runID) }
            let events = try store.events(runID)
            switch common.format {
            case .yaml:
                print(YAMLWriter.serialize(.object(["events": .array(events.map(\.json))])), terminator: "")
            case .json:
                var bytes: [UInt8] = []
                for event in events {
                    event.json.write(into: &bytes, pretty: false)
                    bytes.append(UInt8(ascii: "\n"))
                }
                FileHandle.standardOutput.write(Data(bytes))
            case .human:
                for event in events {
                    let step = event.stepID.map { " \($0)" } ?? ""
                    let attempt = event.attempt.map { " #\($0)" } ?? ""
                    let data = event.data.map { " \($0.serialized())" } ?? ""
                    print(truncateLine("\(event.seq) \(Timestamp.rfc3339(event.timestamp)) \(event.kind.rawValue)\(step)\(attempt)\(data)"))
                }
            }
        }
        return 0
    }

    func unknownRun(_ runID: String) -> EngineError {
        EngineError(.unknownReference, "no run \(runID) in \(common.stateDirectory)")
    }

    func truncateLine(_ line: String) -> String {
        line.count <= 100 ? line : String(line.prefix(97)) + "..."
    }
}

/// The one run id a command takes.
func singleRunID(_ scanner: ArgumentScanner, command: String) throws(EngineError) -> String {
    let positionals = scanner.remainingPositionals
    guard positionals.count == 1 else {
        throw usage(positionals.isEmpty ? "\(command) needs a run id" : "\(command) takes one run id, got \(positionals.count)")
    }
    return positionals[0]
}
