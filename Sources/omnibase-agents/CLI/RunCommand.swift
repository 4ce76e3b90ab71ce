import Foundation
import Orchestration

/// `run PLAN.json`: execute a plan.
struct RunCommand: CLICommand {
    static let name = "run"
    static let abstract = "Execute a plan."
    static let help = """
    Usage: omnibase-agents run PLAN.json [options]

    Executes a plan: a DAG of steps with a concurrency limit, timeouts, retries and failure
    policies. Events, logs and the report go to the state folder (runs/<run_id>/).

    Options:
      --var NAME=VALUE          Set a plan variable (repeatable; overrides the plan's "variables").
      --max-concurrency N       Run at most N steps at once (overrides globals.max_concurrency).
      --mode MODE               async (default), sync (one step at a time), dry-run (print the
                                steps in order with their argv, start nothing).
      --from ID                 Run only what is downstream of step ID (inclusive).
      --to ID                   Run only what is upstream of step ID (inclusive).
    \(CommonOptions.help)

    Exit codes: 0 succeeded, 1 failed, 2 bad plan or arguments, 3 unknown step id,
    74 state folder failed, 130/143 interrupted (the run is recorded cancelled).

    """

    enum Mode: String { case async, sync, dryRun = "dry-run" }

    let planPath: String
    let variables: [String: String]
    let maxConcurrency: Int?
    let mode: Mode
    let from: String?
    let to: String?
    let common: CommonOptions

    init(arguments: [String]) throws(EngineError) {
        let scanner = try ArgumentScanner(
            arguments, valueOptions: CommonOptions.valueOptions.union(["--var", "--max-concurrency", "--mode", "--from", "--to"]),
            flags: CommonOptions.flags)
        let positionals = scanner.remainingPositionals
        guard positionals.count == 1 else {
            throw usage(positionals.isEmpty ? "run needs a plan file" : "run takes one plan file, got \(positionals.count) arguments")
        }
        planPath = positionals[0]
        variables = try scanner.variables()
        maxConcurrency = try scanner.integer("--max-concurrency", range: 1...100_000)
        mode = Mode(rawValue: try scanner.choice("--mode", among: ["async", "sync", "dry-run"]) ?? "async")!
        from = scanner.value("--from")
        to = scanner.value("--to")
        common = try CommonOptions(scanner)
    }

    func run() async throws(EngineError) -> Int32 {
        let loaded = try PlanLoader.load(path: planPath, overrides: variables)
        let request = RunRequest(maxConcurrency: mode == .sync ? 1 : maxConcurrency, from: from, to: to)
        if mode == .dryRun {
            printDryRun(loaded, initial: try loaded.graph.initialStates(from: from, to: to))
            return 0
        }
        let session = try RunSession(stateDirectory: common.stateDirectory)
        let signals = SignalStopSource()
        defer { signals.finish() }
        let report = try await session.start(loaded, request: request, stopRequests: signals.requests)
        common.emit(json: report.json) { HumanReport.render(report, style: common.style) }
        return report.exitCode
    }

    func printDryRun(_ loaded: LoadedPlan, initial: [SchedulerStateMachine.InitialState]?) {
        let order = loaded.graph.topologicalOrder.filter { initial?[$0] != .excluded }
        let steps = order.map { loaded.plan.steps[$0] }
        let json: JSONValue = .object([
            "plan_id": .string(loaded.plan.id),
            "mode": "dry-run",
            "steps": .array(steps.map { step in
                .object([
                    "id": .string(step.id),
                    "argv": .array((step.processCommand?.argv ?? []).map { .string($0) }),
                    "cwd": step.processCommand?.workingDirectory.map { .string($0) } ?? .null,
                    "depends_on": .array(step.dependsOn.map { .string($0) }),
                ])
            }),
        ])
        common.emit(json: json) {
            var text = "Dry run of \(loaded.plan.id): \(steps.count) steps in order, nothing started\n"
            for (position, step) in steps.enumerated() {
                let argv = (step.processCommand?.argv ?? []).map(ShellQuoting.quote).joined(separator: " ")
                text += "\(position + 1). \(step.id): \(argv)\n"
            }
            return text
        }
    }
}

/// Shell-style quoting for display only (nothing here is ever given to a shell).
enum ShellQuoting {
    static func quote(_ word: String) -> String {
        let safe = word.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "-_./=:,@%+".unicodeScalars.contains($0)
        }
        if safe && !word.isEmpty { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
