import Foundation
import Orchestration
import Presentation
import Stages

/// `orch --stage pre-commit|ci|test|pipeline|registry ...`: the stage orchestrators (SPEC §6).
struct OrchCommand: CLICommand {
    static let name = "orch"
    static let abstract = "Run a stage of the component registry: pre-commit, ci, test, pipeline; or administer it."
    static let help = """
    Usage: omnibase-agents orch --stage pre-commit|ci|test [selection] [options]
           omnibase-agents orch --stage pipeline --from A --to B [--to C ...] [options]
           omnibase-agents orch --stage registry list | inspect NAME | remove NAME | reset NAME
           omnibase-agents orch --stage registry add --name N --type T --command C [--arg A]... [...]
           omnibase-agents orch --stage registry add --json '{"name": ..., "type": ..., "command": ...}'

    Runs the components of the registry (omnibase.registry.json in the current folder) that a
    stage selects, as a plan on the same engine as 'run': same report (with "stage"), same state,
    'resume' and 'replay' work on stage runs too. Defaults (SPEC section 6) unless the registry's
    "stages" section says otherwise: pre-commit = validators tagged pre-commit, canary or stable,
    sync; test = components of type test, canary or stable, sync; ci = every canary or stable
    component, async. Dependencies of selected components are pulled in. Deprecated components
    run with a WARN; experimental ones only when asked for (--lifecycle experimental).

    Selection:
      --tags a,b                Only components with one of these tags (ANDed with the stage's).
      --filter 'k=v,k=v'        Clauses on name, type, lifecycle, tags; a|b for alternatives; ANDed.
      --lifecycle L,...         canary, stable, deprecated, experimental or all; replaces the stage's.
      --from ID / --to ID       pipeline: the chain, in order (--to repeatable); other stages: run
                                the part of the DAG downstream of --from and upstream of --to.

    Options:
      --registry FILE           The registry (default: ./omnibase.registry.json).
      --mode MODE               sync (one at a time), async (concurrent), dry-run (print what would
                                run, in order, with resolved argv; start nothing), profile (sync,
                                plus timings: per component, critical path, engine overhead),
                                replay (run the stage's latest run again from its snapshot).
      --max-concurrency N       The concurrency limit in async mode.
      --run-id ID               replay: the run to replay instead of the latest.
    \(CommonOptions.help)

    Registry administration ('add' options; the file is rewritten atomically as canonical JSON):
      --name N --type tool|validator|test --command C [--arg A]... [--description TEXT]
      [--lifecycle canary|stable|deprecated|experimental] [--tags a,b] [--idempotent]
      [--retries N] [--timeout-sec S] [--depends-on a,b] [--on-failure abort|continue|skip_dependents]
      [--not-critical] [--cwd DIR] [--env K=V]...

    Circuit breakers (registry "breaker": {"failure_threshold": 3, "cooldown_sec": 60}): a component
    that failed that many times in a row is skipped with the reason until the cooldown has passed,
    then runs once as a trial. 'registry inspect NAME' shows its state; 'registry reset NAME' closes it.

    Exit codes: 0 succeeded, 1 a component failed, a gate is not met or a pre hook failed,
    2 bad registry or arguments, 3 unknown component or run, 74 state folder failed,
    130/143 interrupted.

    """

    static let executionOptions: Set<String> = ["--filter", "--mode", "--from", "--to", "--max-concurrency", "--run-id"]
    static let addOptions: Set<String> = ["--json", "--name", "--description", "--type", "--command", "--arg", "--timeout-sec",
                                          "--depends-on", "--retries", "--retry-delay-sec", "--on-failure", "--cwd", "--env",
                                          "--idempotent", "--not-critical"]
    static let valueOptions: Set<String> = CommonOptions.valueOptions.union([
        "--stage", "--registry", "--tags", "--filter", "--lifecycle", "--mode", "--from", "--to", "--max-concurrency",
        "--run-id", "--json", "--name", "--description", "--type", "--command", "--arg", "--timeout-sec", "--depends-on",
        "--retries", "--retry-delay-sec", "--on-failure", "--cwd", "--env",
    ])
    static let flags: Set<String> = CommonOptions.flags.union(["--idempotent", "--not-critical"])

    let stage: Stage
    let registryPath: String
    let mode: StageMode?
    let selection: SelectionRequest
    let from: String?
    let to: String?
    let maxConcurrency: Int?
    let replayRunID: String?
    let action: RegistryAction?
    let common: CommonOptions
    let noColor: Bool

    init(arguments: [String]) throws(EngineError) {
        let scanner = try ArgumentScanner(arguments, valueOptions: Self.valueOptions, flags: Self.flags)
        guard let stageName = scanner.value("--stage") else {
            throw usage("orch needs --stage pre-commit, ci, test, pipeline or registry")
        }
        guard let stage = Stage(rawValue: stageName) else {
            let hint = Suggestion.closest(to: stageName, among: Stage.allCases.map(\.rawValue)).map { " (did you mean '\($0)'?)" } ?? ""
            throw usage("unknown stage '\(stageName)'\(hint); use pre-commit, ci, test, pipeline or registry")
        }
        self.stage = stage
        registryPath = scanner.value("--registry") ?? RegistryLoader.defaultFileName
        noColor = scanner.flag("--no-color")
        common = try CommonOptions(scanner)
        func given(_ names: Set<String>) -> String? {
            names.sorted().first { scanner.flag($0) || scanner.value($0) != nil }
        }

        if stage == .registry {
            if let option = given(Self.executionOptions) {
                throw usage("option \(option) does not apply to the registry stage")
            }
            action = try Self.registryAction(scanner)
            mode = nil
            selection = SelectionRequest()
            from = nil
            to = nil
            maxConcurrency = nil
            replayRunID = nil
            return
        }
        action = nil
        if let option = given(Self.addOptions) {
            throw usage("option \(option) belongs to 'orch --stage registry add'")
        }
        guard scanner.remainingPositionals.isEmpty else {
            throw usage("orch --stage \(stage) takes no positional arguments, got '\(scanner.remainingPositionals[0])'")
        }
        mode = try scanner.choice("--mode", among: StageMode.allCases.map(\.rawValue)).flatMap(StageMode.init(rawValue:))
        var request = SelectionRequest()
        if let text = scanner.value("--tags") { request.tags = try Self.list(text, option: "--tags") }
        if let text = scanner.value("--filter") {
            do { request.filter = try ComponentFilter(parsing: text) } catch { throw usage("--filter: \(error.message)") }
        }
        if let text = scanner.value("--lifecycle") { request.lifecycle = try Self.lifecycles(text) }
        let tos = scanner.values("--to")
        if stage == .pipeline {
            request.chain = (scanner.value("--from").map { [$0] } ?? []) + tos
            from = nil
            to = nil
            if request.tags != nil || request.filter != nil || request.lifecycle != nil {
                throw usage("the pipeline stage runs the components named with --from/--to; --tags, --filter and --lifecycle do not apply")
            }
        } else {
            guard tos.count <= 1 else { throw usage("--to may be given once, except for the pipeline stage") }
            from = scanner.value("--from")
            to = tos.first
        }
        selection = request
        maxConcurrency = try scanner.integer("--max-concurrency", range: 1...100_000)
        replayRunID = scanner.value("--run-id")
        if replayRunID != nil, mode != .replay { throw usage("--run-id applies to --mode replay") }
    }

    func run() async throws(EngineError) -> Int32 {
        let registry: LoadedRegistry? = stage == .registry ? nil : try RegistryLoader.load(path: registryPath)
        let warningStyle = TextStyle.detect(fd: 2, noColor: noColor)
        let signals = stage == .registry ? nil : SignalStopSource()
        defer { signals?.finish() }
        let context = ExecutionContext(
            registryPath: registryPath, registry: registry, stateDirectory: common.stateDirectory, mode: mode,
            selection: selection, from: from, to: to, maxConcurrency: maxConcurrency, replayRunID: replayRunID,
            registryAction: action,
            notices: { message in
                let line = "\(warningStyle.rich ? "⚠️ " : "WARN") \(TerminalText.escaped(message))\n"
                StandardStreams.printError(line)
            },
            stopRequests: signals?.requests)
        let report = try await stage.orchestrator.run(context)
        common.emit(json: report.json) { report.human(style: common.style) }
        return report.exitCode
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

    static func registryAction(_ scanner: ArgumentScanner) throws(EngineError) -> RegistryAction {
        var positionals = scanner.remainingPositionals
        guard !positionals.isEmpty else {
            throw usage("the registry stage needs an action: list, inspect NAME, add, remove NAME or reset NAME")
        }
        let word = positionals.removeFirst()
        let actions = ["list", "inspect", "add", "remove", "reset"]
        guard actions.contains(word) else {
            let hint = Suggestion.closest(to: word, among: actions).map { " (did you mean '\($0)'?)" } ?? ""
            throw usage("unknown registry action '\(word)'\(hint); use list, inspect, add, remove or reset")
        }
        let addGiven = addOptions.union(["--tags", "--lifecycle"]).sorted().first { scanner.flag($0) || scanner.value($0) != nil }
        if word != "add", let option = addGiven { throw usage("option \(option) belongs to 'registry add'") }
        switch word {
        case "list":
            guard positionals.isEmpty else { throw usage("registry list takes no name") }
            return .list
        case "add":
            guard positionals.isEmpty else { throw usage("registry add takes the component as options or --json, not '\(positionals[0])'") }
            return try addAction(scanner)
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

    static func addAction(_ scanner: ArgumentScanner) throws(EngineError) -> RegistryAction {
        if let json = scanner.value("--json") {
            if let option = addOptions.union(["--tags", "--lifecycle"]).subtracting(["--json"]).sorted()
                .first(where: { scanner.flag($0) || scanner.value($0) != nil }) {
                throw usage("--json gives the whole component; \(option) cannot be combined with it")
            }
            return .add(json: json, source: "--json")
        }
        guard let name = scanner.value("--name") else { throw usage("registry add needs --name (or --json)") }
        guard let type = try scanner.choice("--type", among: Component.Kind.allCases.map(\.rawValue)) else {
            throw usage("registry add needs --type tool, validator or test")
        }
        guard let command = scanner.value("--command"), !command.isEmpty else { throw usage("registry add needs --command") }
        var members: [JSONValue.Member] = [.init("name", .string(name))]
        if let description = scanner.value("--description") { members.append(.init("description", .string(description))) }
        members.append(.init("type", .string(type)))
        if let lifecycle = try scanner.choice("--lifecycle", among: Component.Lifecycle.allCases.map(\.rawValue)) {
            members.append(.init("lifecycle", .string(lifecycle)))
        }
        if let tags = scanner.value("--tags") {
            members.append(.init("tags", .array(try list(tags, option: "--tags").map { .string($0) })))
        }
        members.append(.init("command", .string(command)))
        let arguments = scanner.values("--arg")
        if !arguments.isEmpty { members.append(.init("args", .array(arguments.map { .string($0) }))) }
        if scanner.flag("--idempotent") { members.append(.init("idempotent", true)) }
        if let text = scanner.value("--timeout-sec") {
            guard let seconds = Double(text), seconds > 0, seconds.isFinite else {
                throw usage("option --timeout-sec needs a positive number of seconds, not \"\(text)\"")
            }
            members.append(.init("timeout_sec", seconds == seconds.rounded() && seconds < 1e9 ? .int(Int(seconds)) : .double(seconds)))
        }
        if let text = scanner.value("--depends-on") {
            members.append(.init("depends_on", .array(try list(text, option: "--depends-on").map { .string($0) })))
        }
        if let retries = try scanner.integer("--retries", range: 0...100) {
            guard scanner.flag("--idempotent") || retries == 0 else {
                throw usage("--retries needs --idempotent: only idempotent components are retried")
            }
            members.append(.init("retries", .int(retries)))
        }
        if let text = scanner.value("--retry-delay-sec") {
            guard let seconds = Double(text), seconds >= 0, seconds.isFinite else {
                throw usage("option --retry-delay-sec needs a number of seconds, not \"\(text)\"")
            }
            members.append(.init("retry_delay_sec", .double(seconds)))
        }
        if scanner.flag("--not-critical") { members.append(.init("critical", false)) }
        if let policy = try scanner.choice("--on-failure", among: ["abort", "continue", "skip_dependents"]) {
            members.append(.init("on_failure", .string(policy)))
        }
        if let cwd = scanner.value("--cwd") { members.append(.init("cwd", .string(cwd))) }
        let env = scanner.values("--env")
        if !env.isEmpty {
            var pairs: [JSONValue.Member] = []
            for pair in env {
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                    throw usage("--env needs NAME=VALUE, not \"\(pair)\"")
                }
                pairs.append(.init(String(pair[..<equals]), .string(String(pair[pair.index(after: equals)...]))))
            }
            members.append(.init("env", .object(pairs)))
        }
        return .add(json: JSONValue.object(members).serialized(), source: "registry add options")
    }
}
