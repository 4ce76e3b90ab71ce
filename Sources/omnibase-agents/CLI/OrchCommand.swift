import Foundation
import Orchestration
import Presentation
import Stages
import Synchronization

/// `orch --stage pre-commit|ci|test|pipeline|registry ...`: the stage orchestrators (SPEC §6).
/// Each option's table entry says which stages (or registry actions) it belongs to; any other
/// is refused with the sentence of ``misplaced(_:stage:)``.
struct OrchCommand: CLICommand {
    /// The stages that run components (every stage but `registry`).
    static let runningStages = Stage.allCases.filter { $0 != .registry }.map(\.rawValue)
    /// The stages that select components by tag, filter and lifecycle (not `pipeline`).
    static let selectingStages = runningStages.filter { $0 != Stage.pipeline.rawValue }

    static let configuration = CommandConfiguration(
        name: "orch", arguments: "--stage pre-commit|ci|test|pipeline|registry ...",
        usage: [
            "orch --stage pre-commit|ci|test [selection] [options]",
            "orch --stage pipeline --from A --to B [--to C ...] [options]",
            "orch --stage registry list | inspect NAME | remove NAME | reset NAME",
            "orch --stage registry add --name N --type T --command C [--arg A]... [...]",
            "orch --stage registry add --json '{\"name\": ..., \"type\": ..., \"command\": ...}'",
        ],
        abstract: "Run a stage of the component registry: pre-commit, ci, test, pipeline; or administer it.",
        discussion: """
        Runs the components of the registry (omnibase.registry.json in the current folder) that a stage \
        selects, as a plan on the same engine as 'run': same report (with "stage"), same state, 'resume' and \
        'replay' work on stage runs too. Defaults (SPEC section 6) unless the registry's "stages" section says \
        otherwise: pre-commit = validators tagged pre-commit, canary or stable, sync; test = components of \
        type test, canary or stable, sync; ci = every canary or stable component, async. Dependencies of \
        selected components are pulled in. Deprecated components run with a WARN; experimental ones only \
        when asked for (--lifecycle experimental).

        Circuit breakers (registry "breaker": {"failure_threshold": 3, "cooldown_sec": 60}): a component \
        that failed that many times in a row is skipped with the reason until the cooldown has passed, then \
        runs once as a trial. 'registry inspect NAME' shows its state; 'registry reset NAME' closes it.
        """,
        sections: [
            OptionSection("Options:", [
                .single("--stage", Stage.allCases.map(\.rawValue).joined(separator: "|"), "The stage to run, or registry to administer it."),
                .single("--registry", "FILE", "The registry (default: ./omnibase.registry.json)."),
                .choice("--mode", "MODE", among: StageMode.allCases.map(\.rawValue), """
                    sync (one at a time), async (concurrent), dry-run (print what would run, in order, with resolved \
                    argv; start nothing), profile (sync, plus timings: per component, critical path, engine \
                    overhead), replay (run the stage's latest run again from what it stored: its components, hooks, \
                    gate and breaker settings; today's registry is not read).
                    """, modes: runningStages),
                .integer("--max-concurrency", "N", 1...100_000, "The concurrency limit in async mode.", modes: runningStages),
                .single("--run-id", "ID", "replay: the run to replay instead of the latest.", modes: runningStages),
                ExecutorKind.option("Where components run (default local; replay: as the replayed run).", modes: runningStages),
                ExecutorKind.keepGoingOption(modes: runningStages),
            ]),
            OptionSection("Selection:", [
                .repeatable("--tags", "a,b", """
                    Only components with one of these tags (ANDed with the stage's); registry add: the component's \
                    tags.
                    """, modes: selectingStages + ["registry add"]),
                .single("--filter", "'k=v,k=v'", "Clauses on name, type, lifecycle, tags; a|b for alternatives; ANDed.",
                        modes: selectingStages),
                .single("--lifecycle", "L,...", """
                    canary, stable, deprecated, experimental or all; replaces the stage's. registry add: the \
                    component's lifecycle (canary|stable|deprecated|experimental).
                    """, modes: selectingStages + ["registry add"]),
                .single("--from", "ID", """
                    pipeline: the chain's first component; other stages: run the part of the DAG downstream of --from.
                    """, modes: runningStages),
                .repeatable("--to", "ID", """
                    pipeline: the chain's next components, in order (repeatable); other stages (once): run the part \
                    of the DAG upstream of --to.
                    """, modes: runningStages),
            ]),
            RegistryAdministration.section,
            CommonOptions.section,
        ],
        epilogue: """
        Exit codes: 0 succeeded, 1 a component failed, a gate is not met or a pre hook failed,
        2 bad registry or arguments, 3 unknown component or run, 74 state folder failed,
        130/143 interrupted.
        """)

    let stage: Stage
    let registryPath: String
    /// Whether `--registry` was given (a replay refuses it: it uses the registry its run stored).
    let registryGiven: Bool
    let mode: StageMode?
    let selection: SelectionRequest
    let from: String?
    let to: String?
    let maxConcurrency: Int?
    let replayRunID: String?
    let executor: ExecutorKind?
    let keepGoing: Bool
    let action: RegistryAction?
    let common: CommonOptions

    init(parsing arguments: ParsedArguments) throws(EngineError) {
        guard let stageName = arguments.value("--stage") else {
            throw usage("orch needs --stage pre-commit, ci, test, pipeline or registry")
        }
        guard let stage = Stage(rawValue: stageName) else {
            let hint = Suggestion.closest(to: stageName, among: Stage.allCases.map(\.rawValue)).map { " (did you mean '\($0)'?)" } ?? ""
            throw usage("unknown stage '\(stageName)'\(hint); use pre-commit, ci, test, pipeline or registry")
        }
        self.stage = stage
        if let given = arguments.value("--registry"), given.isEmpty {
            throw usage("option --registry needs a file name, not an empty value")
        }
        registryGiven = arguments.isGiven("--registry")
        registryPath = arguments.value("--registry") ?? RegistryLoader.defaultFileName
        common = try CommonOptions(arguments)
        try arguments.refuseOptions(outside: stage.rawValue) { option in Self.misplaced(option, stage: stage) }

        if stage == .registry {
            action = try RegistryAdministration.action(arguments)
            mode = nil
            selection = SelectionRequest()
            from = nil
            to = nil
            maxConcurrency = nil
            replayRunID = nil
            executor = nil
            keepGoing = false
            return
        }
        action = nil
        guard arguments.positionals.isEmpty else {
            throw usage("orch --stage \(stage) takes no positional arguments, got '\(arguments.positionals[0])'")
        }
        mode = try arguments.choice("--mode").flatMap(StageMode.init(rawValue:))
        var request = SelectionRequest()
        let tags = arguments.values("--tags")
        if !tags.isEmpty {
            var names: [String] = []
            for text in tags { names += try Self.list(text, option: "--tags") }
            request.tags = names
        }
        if let text = arguments.value("--filter") {
            do { request.filter = try ComponentFilter(parsing: text) } catch { throw usage("--filter: \(error.message)") }
        }
        if let text = arguments.value("--lifecycle") { request.lifecycle = try Self.lifecycles(text) }
        let tos = arguments.values("--to")
        if stage == .pipeline {
            request.chain = (arguments.value("--from").map { [$0] } ?? []) + tos
            from = nil
            to = nil
        } else {
            guard tos.count <= 1 else { throw usage("--to may be given once, except for the pipeline stage") }
            from = arguments.value("--from")
            to = tos.first
        }
        selection = request
        maxConcurrency = try arguments.integer("--max-concurrency")
        replayRunID = arguments.value("--run-id")
        if replayRunID?.isEmpty == true { throw usage("option --run-id needs a run id, not an empty value") }
        executor = try ExecutorKind.parse(arguments)
        keepGoing = arguments.flag("--keep-going")
    }

    func validate() throws(EngineError) {
        if replayRunID != nil, mode != .replay { throw usage("--run-id applies to --mode replay") }
        if mode == .replay, registryGiven {
            throw usage("--mode replay uses the registry stored with the run it replays, so --registry does not apply")
        }
    }

    /// The sentence for an option given to a stage it does not belong to.
    static func misplaced(_ option: Option, stage: Stage) -> String {
        if stage == .registry { return "option \(option.name) does not apply to the registry stage" }
        if option.modes == ["registry add"] { return "option \(option.name) belongs to 'orch --stage registry add'" }
        return "the pipeline stage runs the components named with --from/--to; --tags, --filter and --lifecycle do not apply"
    }

    func run() async throws(EngineError) -> Int32 {
        // The registry stage reads and writes the file itself; a replay uses the registry its run stored.
        let registry: LoadedRegistry? = stage == .registry || mode == .replay ? nil : try RegistryLoader.load(path: registryPath)
        let warningStyle = TextStyle.detect(fd: 2, noColor: common.noColor)
        let signals = stage == .registry ? nil : SignalStopSource()
        defer { signals?.finish() }
        var context = ExecutionContext(
            registryPath: registryPath, registry: registry, stateDirectory: common.stateDirectory, mode: mode,
            selection: selection, from: from, to: to, maxConcurrency: maxConcurrency, replayRunID: replayRunID,
            registryAction: action,
            notices: { message in
                // Within stderr's width, as every human line: a long sentence goes on over indented lines.
                let marker = warningStyle.rich ? "⚠️ " : "WARN "
                let lines = Self.wrap(TerminalText.escaped(PrintMask.shared.apply(message)), first: marker,
                                      indent: String(repeating: " ", count: displayWidth(marker)),
                                      width: max(60, warningStyle.width))
                StandardStreams.printError(lines.joined(separator: "\n") + "\n")
            },
            stopRequests: signals?.requests)
        context.executor = executor
        context.keepGoing = keepGoing
        // The run's progress on stderr and its report as `run` shows them (SPEC section 6: "the
        // same report"): the failed components' stderr tails, their secrets masked.
        let progress = StageProgress(common: common)
        context.runWatcher = progress
        let stageContext = context
        let report = try await withTicks(progress.tick) { () async throws(EngineError) -> StageReport in
            try await stage.orchestrator.run(stageContext)
        }
        var tails: [String: FailureTail] = [:]
        if let run = report.run {
            if let store = try? RunStore(stateDirectory: StateDirectory(path: common.stateDirectory), readOnly: true) {
                PrintMask.shared.addSecretOutputs(of: run.runID, store: store, plan: progress.plan)
            }
            tails = common.failureTails(of: run)
        }
        common.emit(json: report.json) { report.human(style: common.style, failureTails: tails) }
        return report.exitCode
    }

    /// `text` in lines of at most `width` columns, broken between words: the first line starts
    /// with `first`, the others with `indent`; a word wider than a line is cut with an ellipsis.
    static func wrap(_ text: String, first: String, indent: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = first
        var hasWord = false
        for word in text.split(separator: " ") {
            if hasWord && displayWidth(line) + 1 + displayWidth(String(word)) > width {
                lines.append(line)
                line = indent
                hasWord = false
            }
            line += (hasWord ? " " : "") + word
            if displayWidth(line) > width { line = truncate(line, to: width) }
            hasWord = true
        }
        lines.append(line)
        return lines
    }

    // MARK: - Parsing helpers

    static func list(_ text: String, option: String) throws(EngineError) -> [String] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard !items.contains(where: \.isEmpty) else { throw usage("\(option) needs a comma-separated list, not \"\(text)\"") }
        return items
    }

    static func lifecycles(_ text: String) throws(EngineError) -> [Component.Lifecycle] {
        var phases: [Component.Lifecycle] = []
        for item in try list(text, option: "--lifecycle") {
            if item == "all" {
                phases += Component.Lifecycle.allCases
                continue
            }
            guard let phase = Component.Lifecycle(rawValue: item) else {
                let names = Component.Lifecycle.allCases.map(\.rawValue) + ["all"]
                let hint = Suggestion.closest(to: item, among: names).map { " (did you mean '\($0)'?)" } ?? ""
                throw usage("unknown lifecycle '\(item)'\(hint); use \(names.joined(separator: ", "))")
            }
            phases.append(phase)
        }
        return phases
    }

}

/// The live progress of a stage's run on stderr, as `run` draws it (``ProgressPrinter``), and the
/// secret values of the stage's plan for everything printed afterwards (``PrintMask``).
final class StageProgress: StageRunWatcher {
    private let common: CommonOptions
    private let state = Mutex<(printer: ProgressPrinter?, plan: Plan?)>((nil, nil))

    init(common: CommonOptions) { self.common = common }

    /// The plan of the run the stage started, if it started one.
    var plan: Plan? { state.withLock { $0.plan } }

    func observers(for plan: LoadedPlan, request: RunRequest, stateDirectory: StateDirectory) -> [any RunObserver] {
        PrintMask.shared.add(plan.plan.secretMask())
        let printer = common.progressPrinter(for: plan, request: request, stateDirectory: stateDirectory)
        state.withLock { $0 = (printer, plan.plan) }
        return printer.map { [$0] } ?? []
    }

    /// Redraws a live block (every quarter second) while the run goes on.
    func tick() { state.withLock { $0.printer?.tick() } }

    /// Clears a live block for good: the ticks go on until the stage ends (post hooks), and must
    /// not draw it again under the report.
    func runEnded() {
        state.withLock { state in
            state.printer?.clear()
            state.printer = nil
        }
    }
}

/// `orch --stage registry list | inspect NAME | add ... | remove NAME | reset NAME`: editing the
/// registry file; the 'add' options belong to the `registry add` mode.
enum RegistryAdministration {
    static let section = OptionSection(
        "Registry administration ('add' options; the file is rewritten atomically as canonical JSON):",
        modes: ["registry add"], [
            .single("--json", "JSON", "The whole component as a JSON object (no other 'add' option with it)."),
            .single("--name", "N", "The component's name."),
            .choice("--type", among: Component.Kind.allCases.map(\.rawValue), "What the component is."),
            .single("--command", "C", "The program to run."),
            .repeatable("--arg", "A", "One argument of the command (repeatable, in order)."),
            .single("--description", "TEXT", "What the component does."),
            .flag("--idempotent", "Safe to run again (needed for --retries)."),
            .integer("--retries", "N", 0...100, "Retries after a failure (with --idempotent)."),
            .single("--retry-delay-sec", "S", "Seconds between retries."),
            .single("--timeout-sec", "S", "Seconds before the component is stopped."),
            .single("--depends-on", "a,b", "Components that must succeed first."),
            .choice("--on-failure", among: ["abort", "continue", "skip_dependents"], "What its failure does to the rest."),
            .flag("--not-critical", "Its failure does not fail the stage."),
            .single("--cwd", "DIR", "The working folder."),
            .repeatable("--env", "K=V", "An environment variable (repeatable)."),
        ])

    /// The names of the options that describe a component (the 'add' ones, tags and lifecycle).
    static var componentOptions: [String] { (section.options.map(\.name) + ["--tags", "--lifecycle"]).sorted() }

    static func action(_ arguments: ParsedArguments) throws(EngineError) -> RegistryAction {
        var positionals = arguments.positionals
        guard !positionals.isEmpty else {
            throw usage("the registry stage needs an action: list, inspect NAME, add, remove NAME or reset NAME")
        }
        let word = positionals.removeFirst()
        let actions = ["list", "inspect", "add", "remove", "reset"]
        guard actions.contains(word) else {
            let hint = Suggestion.closest(to: word, among: actions).map { " (did you mean '\($0)'?)" } ?? ""
            throw usage("unknown registry action '\(word)'\(hint); use list, inspect, add, remove or reset")
        }
        try arguments.refuseOptions(outside: "registry \(word)") { "option \($0.name) belongs to 'registry add'" }
        switch word {
        case "list":
            guard positionals.isEmpty else { throw usage("registry list takes no name") }
            return .list
        case "add":
            guard positionals.isEmpty else { throw usage("registry add takes the component as options or --json, not '\(positionals[0])'") }
            return try addAction(arguments)
        default:
            guard positionals.count == 1 else { throw usage("registry \(word) needs one component name") }
            let name = positionals[0]
            switch word {
            case "inspect": return .inspect(name)
            case "remove": return .remove(name)
            default: return .reset(name)
            }
        }
    }

    static func addAction(_ arguments: ParsedArguments) throws(EngineError) -> RegistryAction {
        if let json = arguments.value("--json") {
            if let option = componentOptions.first(where: { $0 != "--json" && arguments.isGiven($0) }) {
                throw usage("--json gives the whole component; \(option) cannot be combined with it")
            }
            return .add(json: json, source: "--json")
        }
        guard let name = arguments.value("--name") else { throw usage("registry add needs --name (or --json)") }
        guard let type = try arguments.choice("--type") else {
            throw usage("registry add needs --type tool, validator or test")
        }
        guard let command = arguments.value("--command"), !command.isEmpty else { throw usage("registry add needs --command") }
        var members: [JSONValue.Member] = [.init("name", .string(name))]
        if let description = arguments.value("--description") { members.append(.init("description", .string(description))) }
        members.append(.init("type", .string(type)))
        if let lifecycle = arguments.value("--lifecycle") {
            let allowed = Component.Lifecycle.allCases.map(\.rawValue)
            guard allowed.contains(lifecycle) else {
                throw usage("option --lifecycle must be one of \(allowed.joined(separator: ", ")), not \"\(lifecycle)\"")
            }
            members.append(.init("lifecycle", .string(lifecycle)))
        }
        let tags = arguments.values("--tags")
        if !tags.isEmpty {
            var names: [JSONValue] = []
            for text in tags {
                for tag in try OrchCommand.list(text, option: "--tags") {
                    // As in the file, where a tag listed twice is refused.
                    guard !names.contains(.string(tag)) else { throw usage("--tags \(tag) is given twice") }
                    names.append(.string(tag))
                }
            }
            members.append(.init("tags", .array(names)))
        }
        members.append(.init("command", .string(command)))
        let commandArguments = arguments.values("--arg")
        if !commandArguments.isEmpty { members.append(.init("args", .array(commandArguments.map { .string($0) }))) }
        if arguments.flag("--idempotent") { members.append(.init("idempotent", true)) }
        if let text = arguments.value("--timeout-sec") {
            guard let seconds = Double(text), seconds > 0, seconds.isFinite else {
                throw usage("option --timeout-sec needs a positive number of seconds, not \"\(text)\"")
            }
            members.append(.init("timeout_sec", seconds == seconds.rounded() && seconds < 1e9 ? .int(Int(seconds)) : .double(seconds)))
        }
        if let text = arguments.value("--depends-on") {
            let dependencies = try OrchCommand.list(text, option: "--depends-on")
            for (index, dependency) in dependencies.enumerated() {
                // The same sentences as for the file (exit 2), before the registry is read.
                guard dependency != name else { throw usage("component \"\(name)\" depends on itself (--depends-on \(name))") }
                guard !dependencies[..<index].contains(dependency) else { throw usage("--depends-on \(dependency) is given twice") }
            }
            members.append(.init("depends_on", .array(dependencies.map { .string($0) })))
        }
        if let retries = try arguments.integer("--retries") {
            guard arguments.flag("--idempotent") || retries == 0 else {
                throw usage("--retries needs --idempotent: only idempotent components are retried")
            }
            members.append(.init("retries", .int(retries)))
        }
        if let text = arguments.value("--retry-delay-sec") {
            guard let seconds = Double(text), seconds >= 0, seconds.isFinite else {
                throw usage("option --retry-delay-sec needs a number of seconds, not \"\(text)\"")
            }
            members.append(.init("retry_delay_sec", .double(seconds)))
        }
        if arguments.flag("--not-critical") { members.append(.init("critical", false)) }
        if let policy = try arguments.choice("--on-failure") {
            members.append(.init("on_failure", .string(policy)))
        }
        if let cwd = arguments.value("--cwd") { members.append(.init("cwd", .string(cwd))) }
        let env = arguments.values("--env")
        if !env.isEmpty {
            var pairs: [JSONValue.Member] = []
            for pair in env {
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                    throw usage("--env needs NAME=VALUE, not \"\(pair)\"")
                }
                let variable = String(pair[..<equals])
                guard !pairs.contains(where: { $0.key == variable }) else { throw usage("--env \(variable) is given twice") }
                pairs.append(.init(variable, .string(String(pair[pair.index(after: equals)...]))))
            }
            members.append(.init("env", .object(pairs)))
        }
        return .add(json: JSONValue.object(members).serialized(), source: "registry add options")
    }
}
