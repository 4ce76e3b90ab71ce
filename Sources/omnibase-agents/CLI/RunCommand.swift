import Foundation
import Orchestration
import Presentation

/// `run PLAN.json`: execute a plan.
struct RunCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "run", arguments: "PLAN.json", abstract: "Execute a plan.",
        discussion: """
        Executes a plan: a DAG of steps with a concurrency limit, timeouts, retries and failure \
        policies. Events, logs and the report go to the state folder (runs/<run_id>/).
        """,
        sections: [
            OptionSection("Options:", [
                .repeatable("--var", "NAME=VALUE", "Set a plan variable (repeatable; overrides the plan's \"variables\")."),
                .integer("--max-concurrency", "N", 1...100_000, "Run at most N steps at once (overrides globals.max_concurrency)."),
                .choice("--mode", "MODE", among: Mode.allCases.map(\.rawValue), """
                    async (default), sync (one step at a time), dry-run (print the steps in order with their argv, \
                    start nothing), profile (run, then show per-step timings, the critical path and the engine's own \
                    overhead).
                    """),
                .repeatable("--from", "ID", "Run only what is downstream of step ID (inclusive); with several, of any of them."),
                .repeatable("--to", "ID", "Run only what is upstream of step ID (inclusive); with several, of any of them."),
                ExecutorKind.option("""
                    Where steps run: local processes, or one Slurm batch job per attempt (overrides globals.executor; \
                    a step's own "executor" still wins). See README "Executors".
                    """),
                ExecutorKind.keepGoingOption(),
                SQLiteDatabase.Synchronous.option(),
                .flag("--step", """
                    Step through the plan on a terminal: before each step, show its command and ask continue, skip, \
                    abort or run all (implies sync).
                    """),
            ]),
            CommonOptions.section,
        ],
        epilogue: """
        Exit codes: 0 succeeded, 1 failed, 2 bad plan or arguments, 3 unknown step id,
        74 state folder failed, 130/143 interrupted by SIGINT/SIGTERM (129/131: SIGHUP/SIGQUIT;
        the run is recorded cancelled).
        """)

    enum Mode: String, CaseIterable { case async, sync, dryRun = "dry-run", profile }

    let planPath: String
    let variables: [String: String]
    let maxConcurrency: Int?
    let mode: Mode
    let from: [String]
    let to: [String]
    let common: CommonOptions
    let stepThrough: Bool
    let executor: ExecutorKind?
    let keepGoing: Bool
    let synchronous: SQLiteDatabase.Synchronous

    init(parsing arguments: ParsedArguments) throws(EngineError) {
        planPath = try arguments.positionals(count: 1) {
            $0.isEmpty ? "run needs a plan file" : "run takes one plan file, got \($0.count) arguments"
        }[0]
        variables = try arguments.variables()
        maxConcurrency = try arguments.integer("--max-concurrency")
        mode = try arguments.choice("--mode").flatMap(Mode.init(rawValue:)) ?? .async
        from = arguments.values("--from")
        to = arguments.values("--to")
        common = try CommonOptions(arguments)
        stepThrough = arguments.flag("--step")
        executor = try ExecutorKind.parse(arguments)
        keepGoing = arguments.flag("--keep-going")
        synchronous = try SQLiteDatabase.Synchronous.parse(arguments)
    }

    func validate() throws(EngineError) {
        if stepThrough {
            guard isatty(0) != 0 && isatty(2) != 0 else {
                throw usage("--step needs a terminal to ask on (stdin and stderr are not terminals)")
            }
            guard mode != .dryRun else { throw usage("--step and --mode dry-run do not go together") }
        }
    }

    func run() async throws(EngineError) -> Int32 {
        let loaded = try PlanLoader.load(path: planPath, overrides: variables, refusingUnusedOverrides: true)
        PrintMask.shared.add(loaded.plan.secretMask())
        let request = RunRequest(maxConcurrency: mode == .sync || stepThrough ? 1 : maxConcurrency, from: from, to: to,
                                 executor: executor, keepGoing: keepGoing)
        if mode == .dryRun {
            printDryRun(loaded, initial: try loaded.graph.initialStates(from: from, to: to))
            return 0
        }
        var session = try RunSession(stateDirectory: common.stateDirectory, synchronous: synchronous)
        let chosenPriorities = mode == .profile
            ? session.priorities(for: loaded, failedFirst: session.failedInLatestRun(planID: loaded.plan.id)) : nil
        let buffer = RunProfile.Recorder()
        var observers: [any RunObserver] = mode == .profile ? [buffer] : []
        let progress = stepThrough ? nil : common.progressPrinter(for: loaded, request: request, session: session)
        if let progress { observers.append(progress) }
        let signals = SignalStopSource()
        defer { signals.finish() }
        let allObservers = observers
        if stepThrough { session.runner = InteractiveStepRunner(onAbort: { signals.request(.user) }) }
        let configured = session
        let cpuBefore = RunProfile.processCPUSeconds()
        let report = try await withProgress(progress) { () async throws(EngineError) -> RunReport in
            try await configured.start(loaded, request: request, observers: allObservers, stopRequests: signals.requests)
        }
        // The failure tails printed below mask the values of the run's secret outputs too.
        if let store = try? RunStore(stateDirectory: configured.stateDirectory, readOnly: true) {
            PrintMask.shared.addSecretOutputs(of: report.runID, store: store, plan: loaded.plan)
        }
        if mode == .profile {
            let profile = RunProfile(events: buffer.events, graph: loaded.graph, priorities: chosenPriorities,
                                     arrivals: buffer.arrivals, engineCPUSeconds: RunProfile.processCPUSeconds() - cpuBefore,
                                     matrixGroups: loaded.plan.steps.map { $0.matrix?.step })
            common.emit(json: report.json.adding("profile", profile.json)) {
                common.humanReport(report) + "\n" + profile.render(style: common.style)
            }
        } else {
            common.emit(json: report.json) { common.humanReport(report) }
        }
        return report.exitCode
    }

    func printDryRun(_ loaded: LoadedPlan, initial: [SchedulerStateMachine.InitialState]?) {
        let order = loaded.graph.topologicalOrder.filter { initial?[$0] != .excluded }
        let steps = order.map { loaded.plan.steps[$0] }
        let json: JSONValue = .object([
            "plan_id": .string(loaded.plan.id),
            "mode": "dry-run",
            "steps": .array(steps.map { step in
                var members: [JSONValue.Member] = [
                    .init("id", .string(step.id)),
                    .init("argv", .array((step.processCommand?.argv ?? []).map { .string($0) })),
                    .init("cwd", step.processCommand?.workingDirectory.map { .string($0) } ?? .null),
                    .init("depends_on", .array(step.dependsOn.map { .string($0) })),
                ]
                // Only steps with an "if" have the key: it is decided when the run gets there.
                if let condition = step.condition { members.append(.init("if", .string(condition.text))) }
                if let matrix = step.matrix {
                    members.append(.init("matrix", .object(["step": .string(matrix.step),
                                                            "values": .object(matrix.values.map { .init($0.key, .string($0.value)) })])))
                }
                return .object(members)
            }),
        ])
        // How many of the steps shown each matrix step expanded into, in plan order.
        var matrices: [(step: String, count: Int)] = []
        var position: [String: Int] = [:]
        for (index, step) in loaded.plan.steps.enumerated() where initial?[index] != .excluded {
            guard let group = step.matrix?.step else { continue }
            if let at = position[group] { matrices[at].count += 1 } else {
                position[group] = matrices.count
                matrices.append((group, 1))
            }
        }
        common.emit(json: json) {
            let expanded = matrices.isEmpty ? "" : " (" + matrices.map { "\($0.count) from matrix \(TerminalText.escaped($0.step))" }
                .joined(separator: ", ") + ")"
            // Within the terminal's columns: a long plan id is cut, a long command goes on over
            // continuation lines (the JSON output has every text whole).
            let width = common.style.width
            var text = truncate("Dry run of \(TerminalText.escaped(loaded.plan.id)): \(counted(steps.count, "step"))\(expanded) "
                                + "in order, nothing started", to: width) + "\n"
            for (position, step) in steps.enumerated() {
                let words = (step.processCommand?.argv ?? []).map { TerminalText.escaped(ShellQuoting.quote($0)) }
                let condition = step.condition.map { ["(if \(TerminalText.escaped($0.text)))"] } ?? []
                let head = truncate("\(position + 1). \(TerminalText.escaped(step.id)):", to: width / 2)
                text += wrapWords(words + condition, first: head, indent: "     ", width: width).joined(separator: "\n") + "\n"
            }
            return text
        }
    }
}
