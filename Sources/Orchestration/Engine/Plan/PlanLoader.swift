import Foundation

/// Loads plan files strictly (SPEC §1): a located, one-sentence error for anything that is not
/// exactly a valid plan.
///
/// Every message starts with `FILE:LINE:COLUMN: JSON.PATH:` so a user can jump to the spot.
public enum PlanLoader {
    /// The most steps a plan may have.
    public static let maxSteps = 100_000
    /// The largest plan file.
    public static let maxFileBytes = 16 * 1024 * 1024
    /// The longest step id, in characters (ids are ASCII, so also bytes).
    ///
    /// A step's log files are named `<id>.<attempt>.out` / `.err`, and a file name may have at
    /// most 255 bytes (`NAME_MAX`). An attempt number has at most 19 digits (a 64-bit integer),
    /// so with this limit a log name has at most 200 + 1 + 19 + 4 = 224 bytes, whatever the
    /// attempt, leaving room for a suffix such as a temporary file's.
    public static let maxStepIDLength = 200

    /// Reads, parses, validates and resolves the plan at `path`.
    /// - Parameters:
    ///   - path: the plan file.
    ///   - overrides: `--var NAME=VALUE` values; they take precedence over the plan's `variables`.
    ///   - refusingUnusedOverrides: refuse an override whose name the plan neither declares in
    ///     `variables` nor references as `${NAME}` (a user's `--var` typo); callers that pass the
    ///     same variables to every plan (the agents' CI plan) leave it off.
    /// - Throws: ``EngineError`` with code `invalidPlan` or `unknownVariable` (exit 2).
    public static func load(path: String, overrides: [String: String] = [:],
                            refusingUnusedOverrides: Bool = false) throws(EngineError) -> LoadedPlan {
        let url = URL(fileURLWithPath: path)
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw EngineError(.invalidPlan, "\(path): cannot read the plan: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw EngineError(.invalidPlan, "\(path): the plan is not a regular file")
        }
        guard Int(info.st_size) <= maxFileBytes else {
            throw EngineError(.invalidPlan, "\(path): the plan is larger than 16 MiB (\(info.st_size) bytes)")
        }
        let bytes: [UInt8]
        do { bytes = try FileContents.read(path: path) } catch {
            throw EngineError(.invalidPlan, "\(path): cannot read the plan: \(error)")
        }
        let source = PlanSource(displayPath: path, directory: url.deletingLastPathComponent().standardizedFileURL.path,
                                bytes: bytes, overrides: overrides)
        return try load(source, refusingUnusedOverrides: refusingUnusedOverrides)
    }

    /// Loads a plan from a stored source (used by `resume` and `replay`).
    public static func load(_ source: PlanSource) throws(EngineError) -> LoadedPlan {
        try load(source, refusingUnusedOverrides: false)
    }

    /// Loads a plan; with `refusingUnusedOverrides`, a `--var` whose name the plan neither
    /// declares in `variables` nor references as `${NAME}` is an error (almost always a typo).
    static func load(_ source: PlanSource, refusingUnusedOverrides: Bool) throws(EngineError) -> LoadedPlan {
        let root: JSONNode
        do {
            root = try StrictJSONParser.parse(source.bytes, limits: .init(maxBytes: maxFileBytes, maxDepth: 64))
        } catch {
            let at = error.path.isEmpty ? "" : " (at \(error.path))"
            throw EngineError(.invalidPlan, "\(source.displayPath):\(error.location.line):\(error.location.column): invalid JSON: \(error.message)\(at)")
        }
        var decoder = PlanDecoder(source: source)
        let plan = try decoder.decodePlan(root)
        if refusingUnusedOverrides { try decoder.checkOverridesAreUsed() }
        let graph: PlanGraph
        do { graph = try PlanGraph(steps: plan.steps) } catch {
            throw decoder.graphError(error.issue, ids: plan.steps.map(\.id))
        }
        try decoder.checkOutputReferences(graph)
        if let (index, problem) = graph.firstConditionProblem(plan.steps, variables: plan.variables) {
            throw decoder.conditionError(problem, step: index)
        }
        var loadedSource = source
        loadedSource.envFiles = decoder.envFilesRead
        return LoadedPlan(plan: plan, graph: graph, source: loadedSource)
    }
}

/// Formats located errors for one plan file.
private struct Locator {
    let displayPath: String

    func error(_ location: SourceLocation, _ path: String, _ message: String,
               code: EngineError.Code = .invalidPlan) -> EngineError {
        let at = path.isEmpty ? "" : " \(path):"
        return EngineError(code, "\(displayPath):\(location.line):\(location.column):\(at) \(message)")
    }
}

/// Turns a parsed JSON tree into a ``Plan``, checking every key, type and range.
private struct PlanDecoder {
    let source: PlanSource
    let locator: Locator
    /// Where each step's `depends_on` entries are, for graph errors.
    var dependencyLocations: [[SourceLocation]] = []
    var stepLocations: [SourceLocation] = []
    /// Each (expanded) step's index in the file's `steps`: a matrix step's expansions share one.
    var fileIndexes: [Int] = []
    /// Each (expanded) step's `depends_on` positions in the file, once matrix groups are expanded.
    var dependencyPositions: [[Int]] = []
    /// The matrix combination whose `${matrix.KEY}` the step being decoded may use, with every key
    /// its matrix has (some only in some combinations).
    var matrixInScope: (instance: MatrixInstance, keys: [String])?
    var variables: [String: String] = [:]
    /// The names in the plan's own `variables`.
    var declaredVariables: Set<String> = []
    /// The names referenced as `${NAME}` anywhere substitution applies.
    var referencedVariables: Set<String> = []
    /// The env files read (or taken from the stored source), by absolute path.
    var envFilesRead: [String: String] = [:]
    /// Every `${steps.ID.outputs.NAME}`: the referring step's (expanded) index, where it is written.
    var outputReferences: [(step: Int, reference: OutputTemplate.Reference, location: SourceLocation, path: String)] = []
    /// Where each step's `"if"` string is, by (expanded) step index.
    var conditionLocations: [Int: SourceLocation] = [:]

    init(source: PlanSource) {
        self.source = source
        locator = Locator(displayPath: source.displayPath)
    }

    static let planKeys = ["plan_id", "version", "metadata", "variables", "globals", "steps"]
    static let globalKeys = ["max_concurrency", "default_timeout_sec", "kill_grace_sec", "working_dir", "env", "secrets",
                             "executor", "slurm", "retry_budget", "env_file"]
    static let globalSlurmKeys = ["partition", "account", "extra_args", "cpus", "mem", "time", "pending_timeout_sec"]
    static let stepSlurmKeys = ["cpus", "mem", "time", "pending_timeout_sec"]
    static let stepKeys = ["id", "name", "command", "args", "depends_on", "timeout_sec", "retries",
                           "retry_delay_sec", "retry_backoff", "max_retry_delay_sec", "critical",
                           "on_failure", "cwd", "env", "tags", "executor", "slurm", "retry_on", "retry_jitter", "env_file", "if",
                           "matrix"]
    static let retryOnKeys = ["exit_codes", "stderr_matches", "timeout"]

    /// The keys of `keys` that `others` lacks, each said to belong in `object`.
    static func keysOnlyOf(_ keys: [String], but others: [String], object: String) -> [String: String] {
        Dictionary(uniqueKeysWithValues: keys.filter { !others.contains($0) }.map { ($0, object) })
    }

    func error(_ location: SourceLocation, _ path: String, _ message: String,
               code: EngineError.Code = .invalidPlan) -> EngineError {
        locator.error(location, path, message, code: code)
    }

    /// Refuses an environment name that no process could receive: empty, or holding `=` (the
    /// step would fail at every spawn, after a run had been recorded).
    func checkEnvironmentName(_ name: String, _ location: SourceLocation, _ path: String) throws(EngineError) {
        guard name.isEmpty || name.utf8.contains(UInt8(ascii: "=")) else { return }
        let shown = name.isEmpty ? "an empty name" : "\"\(name)\" (it holds \"=\")"
        throw error(location, path, "\(shown) is not a valid environment variable name")
    }

    /// A located error for a problem of the `if` of (expanded) step `step`: the string's place
    /// in the file, then the column within the expression.
    func conditionError(_ problem: StepCondition.Problem, step: Int) -> EngineError {
        let location = conditionLocations[step] ?? stepLocations[step]
        return error(location, "steps[\(fileIndexes[step])].if", "column \(problem.column) of the condition: \(problem.message)",
                     code: problem.kind == .unknownVariable ? .unknownVariable : .invalidPlan)
    }

    func graphError(_ issue: PlanGraph.Issue, ids: [String]) -> EngineError {
        let sentence = describe(issue, ids: ids)
        let location: SourceLocation
        switch issue {
        case .duplicateID(let index, _): location = stepLocations[index]
        case .unknownDependency(let step, let position, _), .selfDependency(let step, let position),
             .repeatedDependency(let step, let position):
            location = dependencyLocations[step][position]
        case .cycle(let path): location = stepLocations[path.first ?? 0]
        }
        return EngineError(.invalidPlan, "\(source.displayPath):\(location.line):\(location.column): \(sentence)")
    }

    /// Refuses (exit 2, located) an output reference to an unknown step, to the step itself, or
    /// to a step that is not among the referring step's dependencies, direct or transitive.
    func checkOutputReferences(_ graph: PlanGraph) throws(EngineError) {
        guard let (position, issue) = graph.firstOutputReferenceIssue(outputReferences.map { ($0.step, $0.reference) }) else {
            return
        }
        let found = outputReferences[position]
        throw error(found.location, found.path, issue.describe(stepID: graph.ids[found.step], reference: found.reference, ids: graph.ids))
    }

    /// The sentence of a graph issue, with the file's step indexes and `depends_on` positions.
    func describe(_ issue: PlanGraph.Issue, ids: [String]) -> String {
        PlanGraph.describe(issue, ids: ids, fileIndex: { fileIndexes[$0] },
                           filePosition: { dependencyPositions[$0][$1] })
    }

    mutating func decodePlan(_ root: JSONNode) throws(EngineError) -> Plan {
        let top = try Fields(root, path: "", allowed: Self.planKeys, decoder: locator)
        let id = try top.string("plan_id", required: true)!
        let version = try top.string("version", required: true)!
        // Required means a value: an empty one names no plan (in `runs list`, the history's
        // filters) and no version.
        for (key, value) in [("plan_id", id), ("version", version)] where value.isEmpty {
            throw error(top.location(key), key, "must not be empty")
        }
        let metadata = top["metadata"]
        if let metadata, case .object = metadata.kind {} else if let metadata {
            throw error(metadata.location, "metadata", "must be an object, not \(metadata.typeName)")
        }
        var variables = try top.stringMap("variables") ?? [:]
        declaredVariables = Set(variables.keys)
        for (name, value) in source.overrides { variables[name] = value }
        for name in variables.keys where !VariableSubstitution.isValidName(name) {
            throw error(top["variables"]?.location ?? root.location, "variables",
                        "\"\(name)\" is not a valid variable name (letters, digits and _, not starting with a digit)")
        }
        self.variables = variables

        var maxConcurrency: Int?
        var defaultTimeout: Duration?
        var killGrace = Duration.seconds(5)
        var workingDirectory = source.directory
        var globalEnv: [String: String] = [:]
        var secretNames: Set<String> = []
        var executor: ExecutorKind?
        var slurm = SlurmSettings()
        var retryBudget: Int?
        if let globalsNode = top["globals"] {
            let globals = try Fields(globalsNode, path: "globals", allowed: Self.globalKeys, decoder: locator,
                                     elsewhere: Self.keysOnlyOf(Self.stepKeys, but: Self.globalKeys, object: "a step"))
            if let n = try globals.int("max_concurrency", minimum: 1) { maxConcurrency = n }
            defaultTimeout = try globals.seconds("default_timeout_sec", positive: true)
            killGrace = try globals.seconds("kill_grace_sec", positive: false) ?? killGrace
            if let dir = try globals.string("working_dir") {
                workingDirectory = resolvePath(try substitute(dir, globals.location("working_dir"), "globals.working_dir", step: nil))
            }
            if globals["env_file"] != nil {
                for entry in try envFile(globals, path: "globals", step: nil) { globalEnv[entry.name] = entry.value }
            }
            for (name, value, location) in try globals.stringMembers("env") {
                try checkEnvironmentName(name, location, "globals.env")
                globalEnv[name] = try substitute(value, location, "globals.env.\(name)", step: nil)
            }
            secretNames = try decodeSecretNames(globals)
            executor = try globals.enumeration("executor", ExecutorKind.self)
            if let node = globals["slurm"] { slurm = try decodeSlurm(node, path: "globals.slurm", keys: Self.globalSlurmKeys) }
            retryBudget = try globals.int("retry_budget", minimum: 0, maximum: 1_000_000_000)
        }

        guard let stepsNode = top["steps"] else {
            throw error(root.location, "", "missing required field \"steps\"")
        }
        guard case .array(let stepNodes) = stepsNode.kind else {
            throw error(stepsNode.location, "steps", "must be an array of steps, not \(stepsNode.typeName)")
        }
        guard !stepNodes.isEmpty else { throw error(stepsNode.location, "steps", "a plan needs at least one step") }
        guard stepNodes.count <= PlanLoader.maxSteps else {
            throw error(stepsNode.location, "steps", "a plan may have at most \(PlanLoader.maxSteps) steps, this one has \(stepNodes.count)")
        }
        var steps: [Step] = []
        steps.reserveCapacity(stepNodes.count)
        stepLocations.reserveCapacity(stepNodes.count)
        dependencyLocations.reserveCapacity(stepNodes.count)
        var total = stepNodes.count
        for (index, node) in stepNodes.enumerated() {
            guard let matrixNode = node.objectValue?["matrix"] else {
                steps.append(try decodeStep(node, index: index, defaultTimeout: defaultTimeout,
                                            workingDirectory: workingDirectory, globalEnv: globalEnv))
                continue
            }
            let combinations = try expandMatrix(matrixNode, step: node, index: index, total: &total)
            for combination in combinations {
                steps.append(try decodeStep(node, index: index, defaultTimeout: defaultTimeout,
                                            workingDirectory: workingDirectory, globalEnv: globalEnv, combination: combination))
            }
        }
        try resolveMatrixGroups(&steps)
        return Plan(id: id, version: version, metadata: metadata?.toValue(), variables: variables,
                    maxConcurrency: maxConcurrency, killGrace: killGrace, steps: steps, secretNames: secretNames,
                    executor: executor, slurm: slurm, retryBudget: retryBudget)
    }

    /// A step's `retry_on`: at least one rule; exit codes 1-255, each once; non-empty, distinct
    /// stderr substrings.
    func decodeRetryOn(_ node: JSONNode, path: String) throws(EngineError) -> RetryCondition {
        let fields = try Fields(node, path: path, allowed: Self.retryOnKeys, decoder: locator)
        guard !fields.object.members.isEmpty else {
            throw error(node.location, path, "needs at least one of \"exit_codes\", \"stderr_matches\", \"timeout\" "
                        + "(an empty retry_on would retry nothing; remove it to retry every failure)")
        }
        var condition = RetryCondition()
        for (i, codeNode) in (try fields.array("exit_codes") ?? []).enumerated() {
            let at = "\(path).exit_codes[\(i)]"
            guard case .number(let number) = codeNode.kind else {
                throw error(codeNode.location, at, "must be an exit code (an integer 1-255), not \(codeNode.typeName)")
            }
            guard let code = number.int, (1...255).contains(code) else {
                throw error(codeNode.location, at, "must be an exit code of a failure (an integer 1-255), not \(number.text)")
            }
            guard !condition.exitCodes.contains(Int32(code)) else {
                throw error(codeNode.location, at, "exit code \(code) is listed twice")
            }
            condition.exitCodes.append(Int32(code))
        }
        for (i, (text, location)) in (try fields.strings("stderr_matches") ?? []).enumerated() {
            let at = "\(path).stderr_matches[\(i)]"
            guard !text.isEmpty else { throw error(location, at, "must not be empty (it would match every stderr)") }
            guard text.utf8.count <= RetryCondition.stderrWindow else {
                throw error(location, at, "is longer than the 64 KiB of stderr it is matched against")
            }
            guard !condition.stderrMatches.contains(text) else { throw error(location, at, "\"\(text)\" is listed twice") }
            condition.stderrMatches.append(text)
        }
        condition.timeout = try fields.bool("timeout") ?? false
        return condition
    }

    /// `globals.slurm` (every key) or a step's `slurm` (`cpus`, `mem`, `time`,
    /// `pending_timeout_sec`), each value checked
    /// so that `sbatch` never sees one the engine has not validated.
    func decodeSlurm(_ node: JSONNode, path: String, keys: [String]) throws(EngineError) -> SlurmSettings {
        let fields = try Fields(node, path: path, allowed: keys, decoder: locator)
        var settings = SlurmSettings()
        func checked(_ key: String, _ rule: (String) -> String?) throws(EngineError) -> String? {
            guard let value = try fields.string(key) else { return nil }
            if let problem = rule(value) { throw error(fields.location(key), "\(path).\(key)", problem) }
            return value
        }
        settings.partition = try checked("partition", SlurmSettings.validationError(ofName:))
        settings.account = try checked("account", SlurmSettings.validationError(ofName:))
        settings.mem = try checked("mem", SlurmSettings.validationError(ofMemory:))
        settings.time = try checked("time", SlurmSettings.validationError(ofTime:))
        settings.cpus = try fields.int("cpus", minimum: 1, maximum: 100_000)
        settings.pendingTimeout = try fields.seconds("pending_timeout_sec", positive: true)
        for (i, argNode) in (try fields.array("extra_args") ?? []).enumerated() {
            guard case .string(let argument) = argNode.kind else {
                throw error(argNode.location, "\(path).extra_args[\(i)]", "must be a string, not \(argNode.typeName)")
            }
            if let problem = SlurmSettings.validationError(ofExtraArgument: argument) {
                throw error(argNode.location, "\(path).extra_args[\(i)]", problem)
            }
            settings.extraArguments.append(argument)
        }
        return settings
    }

    /// `globals.secrets`: an array of distinct names (`[A-Za-z_][A-Za-z0-9_.-]*`).
    func decodeSecretNames(_ globals: Fields) throws(EngineError) -> Set<String> {
        guard let nodes = try globals.array("secrets") else { return [] }
        var names: Set<String> = []
        for (i, node) in nodes.enumerated() {
            guard case .string(let name) = node.kind else {
                throw error(node.location, "globals.secrets[\(i)]", "must be a variable or environment name, not \(node.typeName)")
            }
            guard Self.isValidSecretName(name) else {
                throw error(node.location, "globals.secrets[\(i)]",
                            "\"\(name)\" is not a valid name (letters, digits, _ . -, not starting with a digit, . or -)")
            }
            guard names.insert(name).inserted else {
                throw error(node.location, "globals.secrets[\(i)]", "\"\(name)\" is listed twice")
            }
        }
        return names
    }

    static func isValidSecretName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || (first | 0x20 >= 0x61 && first | 0x20 <= 0x7A) else {
            return false
        }
        return name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || b == UInt8(ascii: "_")
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
        }
    }

    /// Decodes one step; with `combination`, one expansion of a matrix step (its id gets the
    /// combination's values, its fields its `${matrix.KEY}` values).
    mutating func decodeStep(_ node: JSONNode, index: Int, defaultTimeout: Duration?,
                             workingDirectory: String, globalEnv: [String: String],
                             combination: MatrixSpec.Combination? = nil) throws(EngineError) -> Step {
        let path = "steps[\(index)]"
        let fields = try Fields(node, path: path, allowed: Self.stepKeys, decoder: locator,
                                elsewhere: Self.keysOnlyOf(Self.globalKeys, but: Self.stepKeys, object: "\"globals\""))
        // The step's place in the plan once matrices are expanded (`index` is the file's).
        let stepIndex = stepLocations.count
        stepLocations.append(node.location)
        fileIndexes.append(index)
        let writtenID = try fields.string("id", required: true)!
        guard Self.isValidStepID(writtenID) else {
            throw error(fields.location("id"), "\(path).id",
                        "step id \"\(writtenID)\" must start with a letter or digit and contain only letters, digits, _ . -")
        }
        let id = writtenID + (combination?.idSuffix ?? "")
        guard id.utf8.count <= PlanLoader.maxStepIDLength else {
            let what = combination == nil ? "step id" : "the matrix expansion id"
            throw error(fields.location(combination == nil ? "id" : "matrix"), "\(path).\(combination == nil ? "id" : "matrix")",
                        "\(what) \"\(id.prefix(40))...\" is \(id.utf8.count) characters long; the limit is "
                            + "\(PlanLoader.maxStepIDLength) (its log file names must fit the file system)")
        }
        defer { matrixInScope = nil }
        if let combination { matrixInScope = (combination.instance, combination.keys) }
        let rawCommand = try fields.string("command", required: true)!
        guard !rawCommand.isEmpty else { throw error(fields.location("command"), "\(path).command", "step \"\(id)\" has an empty command") }
        var bindings = OutputBindings(baseDirectory: source.directory)
        let command: String
        (command, bindings.command) = try template(rawCommand, fields.location("command"), "\(path).command", step: id, index: stepIndex)
        // Known now, so refused now, like an empty command written out (it was a run that failed).
        guard !command.isEmpty || bindings.command != nil else {
            throw error(fields.location("command"), "\(path).command", "step \"\(id)\" has an empty command once its variables are substituted")
        }
        var arguments: [String] = []
        if let argNodes = try fields.array("args") {
            for (i, argNode) in argNodes.enumerated() {
                guard case .string(let raw) = argNode.kind else {
                    throw error(argNode.location, "\(path).args[\(i)]", "must be a string, not \(argNode.typeName)")
                }
                let (argument, bound) = try template(raw, argNode.location, "\(path).args[\(i)]", step: id, index: stepIndex)
                arguments.append(argument)
                bindings.arguments[i] = bound
            }
        }
        var dependsOn: [String] = []
        var locations: [SourceLocation] = []
        if let depNodes = try fields.array("depends_on") {
            for (i, depNode) in depNodes.enumerated() {
                guard case .string(let dep) = depNode.kind else {
                    throw error(depNode.location, "\(path).depends_on[\(i)]", "must be a step id string, not \(depNode.typeName)")
                }
                dependsOn.append(dep)
                locations.append(depNode.location)
            }
        }
        dependencyLocations.append(locations)
        let timeout = try fields.seconds("timeout_sec", positive: true) ?? defaultTimeout
        var retry = RetryPolicy()
        retry.retries = try fields.int("retries", minimum: 0, maximum: 1000) ?? 0
        retry.delay = try fields.seconds("retry_delay_sec", positive: false) ?? .zero
        retry.backoff = try fields.enumeration("retry_backoff", RetryPolicy.Backoff.self) ?? .exponential
        retry.maxDelay = try fields.seconds("max_retry_delay_sec", positive: false) ?? .seconds(300)
        retry.jitter = try fields.bool("retry_jitter") ?? false
        if let node = fields["retry_on"] { retry.retryOn = try decodeRetryOn(node, path: "\(path).retry_on") }
        let critical = try fields.bool("critical") ?? true
        let onFailure = try fields.enumeration("on_failure", FailurePolicy.self) ?? .abort
        var cwd = workingDirectory
        if let raw = try fields.string("cwd") {
            let (shown, bound) = try template(raw, fields.location("cwd"), "\(path).cwd", step: id, index: stepIndex)
            cwd = resolvePath(shown)
            bindings.workingDirectory = bound
        }
        var env = globalEnv
        if fields["env_file"] != nil {
            for entry in try envFile(fields, path: path, step: id) { env[entry.name] = entry.value }
        }
        for (name, value, location) in try fields.stringMembers("env") {
            try checkEnvironmentName(name, location, "\(path).env")
            let bound: OutputTemplate?
            (env[name], bound) = try template(value, location, "\(path).env.\(name)", step: id, index: stepIndex)
            bindings.environment[name] = bound
        }
        var tags: [String] = []
        if let tagNodes = try fields.array("tags") {
            for (i, tagNode) in tagNodes.enumerated() {
                guard case .string(let tag) = tagNode.kind else {
                    throw error(tagNode.location, "\(path).tags[\(i)]", "must be a string, not \(tagNode.typeName)")
                }
                tags.append(tag)
            }
        }
        let action = StepAction.process(ProcessCommand(command: command, arguments: arguments,
                                                       workingDirectory: cwd, environment: env,
                                                       outputBindings: bindings.isEmpty ? nil : bindings))
        let executor = try fields.enumeration("executor", ExecutorKind.self)
        let slurm = try fields["slurm"].map { node throws(EngineError) in
            try decodeSlurm(node, path: "\(path).slurm", keys: Self.stepSlurmKeys)
        }
        var condition: StepCondition?
        if let text = try fields.string("if") {
            conditionLocations[stepIndex] = fields.location("if")
            do { condition = try StepCondition(parsing: text, matrix: combination?.instance) } catch {
                throw conditionError(error, step: stepIndex)
            }
            for reference in condition?.references ?? [] {
                if case .variable(let name) = reference.kind { referencedVariables.insert(name) }
            }
        }
        let name = try fields.string("name").map { (raw: String) throws(EngineError) -> String in
            try substituteMatrix(raw, fields.location("name"), "\(path).name", step: id, escaping: false)
        }
        return Step(id: id, name: name, action: action, dependsOn: dependsOn,
                    timeout: timeout, retry: retry, critical: critical, onFailure: onFailure, tags: tags,
                    executor: executor, slurm: slurm, condition: condition, matrix: combination?.instance)
    }

    /// The entries of the env file named by `owner`'s `env_file` (relative to the plan's folder,
    /// `${NAME}` substituted): read from disk on a fresh load, from the stored source on resume
    /// and replay. A malformed line is located in the env file and names the plan's field.
    mutating func envFile(_ owner: Fields, path: String, step: String?) throws(EngineError) -> [EnvFile.Entry] {
        let key = "\(path).env_file"
        guard let raw = try owner.string("env_file") else { return [] }
        guard !raw.isEmpty else { throw error(owner.location("env_file"), key, "must name a file, not be empty") }
        let file = resolvePath(try substitute(raw, owner.location("env_file"), key, step: step))
        let at = owner.location("env_file")
        let text: String
        if let stored = source.envFiles {
            guard let snapshot = stored[file] else {
                throw error(at, key, "env file \(file) is not in the run's stored snapshot")
            }
            text = snapshot
        } else if let already = envFilesRead[file] {
            text = already
        } else {
            text = try readEnvFile(file, at, key)
        }
        envFilesRead[file] = text
        do {
            return try EnvFile(parsing: Array(text.utf8)).entries
        } catch {
            throw EngineError(.invalidPlan, "\(file):\(error.line):\(error.column): \(error.message) "
                              + "(the env file of \(key), \(source.displayPath):\(at.line):\(at.column))")
        }
    }

    /// An env file's text: a regular file of at most 1 MiB, valid UTF-8.
    func readEnvFile(_ file: String, _ at: SourceLocation, _ key: String) throws(EngineError) -> String {
        // Non-blocking: opening a FIFO for reading otherwise waits for a writer, forever.
        let fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw error(at, key, "cannot read the env file \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw error(at, key, "the env file \(file) is not a regular file")
        }
        guard Int(info.st_size) <= EnvFile.maxBytes else {
            throw error(at, key, "the env file \(file) is larger than 1 MiB (\(info.st_size) bytes)")
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= EnvFile.maxBytes {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw error(at, key, "cannot read the env file \(file): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += buffer[0..<count]
        }
        guard bytes.count <= EnvFile.maxBytes else { throw error(at, key, "the env file \(file) is larger than 1 MiB") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw error(at, key, "the env file \(file) is not valid UTF-8")
        }
        return text
    }

    /// Refuses (exit 2) a `--var` the plan never uses, with a "did you mean".
    func checkOverridesAreUsed() throws(EngineError) {
        let used = declaredVariables.union(referencedVariables)
        for name in source.overrides.keys.sorted() where !used.contains(name) {
            let hint = Suggestion.closest(to: name, among: used.sorted()).map { " (did you mean \($0)?)" }
                ?? (used.isEmpty ? " (it uses no variables)" : "")
            throw EngineError(.unknownVariable, "--var \(name): the plan \(source.displayPath) does not use a variable "
                              + "\(name) (not in its \"variables\", no ${\(name)} in it)\(hint)")
        }
    }

    /// A step's `command`, `args` element, `cwd` or `env` value: its variables substituted, and
    /// its output references (if any) kept for the attempt's start, with the text as written
    /// standing in until then.
    mutating func template(_ text: String, _ location: SourceLocation, _ path: String, step: String,
                           index: Int) throws(EngineError) -> (String, OutputTemplate?) {
        let parsed: OutputTemplate?
        do {
            parsed = try OutputTemplate.parse(text, variables: variables, referenced: &referencedVariables)
        } catch {
            throw substitutionError(error, location, path, step: step)
        }
        guard let parsed else { return (try substitute(text, location, path, step: step), nil) }
        for reference in parsed.references {
            outputReferences.append((index, reference, location, path))
        }
        return (parsed.placeholder, parsed)
    }

    mutating func substitute(_ text: String, _ location: SourceLocation, _ path: String, step: String?) throws(EngineError) -> String {
        let text = try substituteMatrix(text, location, path, step: step, escaping: true)
        do {
            return try VariableSubstitution.substitute(text, variables: variables, referenced: &referencedVariables)
        } catch {
            throw substitutionError(error, location, path, step: step)
        }
    }

    /// The located error of a failed substitution.
    func substitutionError(_ failure: VariableSubstitution.Failure, _ location: SourceLocation, _ path: String,
                           step: String?) -> EngineError {
        let owner = step.map { " in step \"\($0)\"" } ?? ""
        switch failure {
        case .unknownVariable(let name):
            let hint = Suggestion.closest(to: name, among: variables.keys).map { " (did you mean ${\($0)}?)" }
                ?? "; pass --var \(name)=VALUE or define it in \"variables\""
            return error(location, path, "unknown variable ${\(name)}\(owner)\(hint)", code: .unknownVariable)
        case .malformedReference(let text) where text.hasPrefix("${steps."):
            if text.hasSuffix("}"), OutputTemplate.Reference(inner: text.dropFirst(2).dropLast()) != nil {
                return error(location, path, "\(text)\(owner): step outputs can only be used in a step's command, args, cwd and env")
            }
            return error(location, path, "malformed output reference \(text)\(owner) "
                         + "(write ${steps.ID.outputs.NAME}, NAME being letters, digits and _)")
        case .malformedReference(let text):
            return error(location, path, "malformed variable reference \(text)\(owner) (write ${NAME}, or $$ for a literal $)")
        }
    }

    func resolvePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: source.directory, isDirectory: true))
            .standardizedFileURL.path
    }

    static func isValidStepID(_ id: String) -> Bool {
        func alnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        guard let first = id.utf8.first, alnum(first) else { return false }
        return id.utf8.allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }
}

extension PlanDecoder {
    /// Parses a step's `"matrix"` and expands it, counting its combinations towards the step
    /// limit before making any (`total`: the plan's steps so far, this one counted once).
    mutating func expandMatrix(_ node: JSONNode, step: JSONNode, index: Int,
                               total: inout Int) throws(EngineError) -> [MatrixSpec.Combination] {
        let path = "steps[\(index)].matrix"
        let spec: MatrixSpec
        do { spec = try MatrixSpec.parse(node, path: path) } catch { throw self.error(error.location, error.path, error.message) }
        guard (spec.product ?? .max) <= PlanLoader.maxSteps else {
            let count = spec.product.map { "\($0)" } ?? "more than \(Int.max)"
            throw error(node.location, path, "the matrix makes \(spec.sizes) = \(count) combinations; "
                        + "a plan may have at most \(PlanLoader.maxSteps) steps")
        }
        let id = step.objectValue?["id"]?.stringValue ?? ""
        let combinations = spec.expand(stepID: id)
        guard !combinations.isEmpty else {
            throw error(node.location, path, "exclude removes every combination, so step \"\(id)\" would never run")
        }
        total += combinations.count - 1
        guard total <= PlanLoader.maxSteps else {
            throw error(node.location, path, "with this matrix's \(combinations.count) combinations the plan has "
                        + "\(total) steps; a plan may have at most \(PlanLoader.maxSteps)")
        }
        return combinations
    }

    /// Refuses an expansion id that another step or expansion has, and a matrix step's id that
    /// any step has (`depends_on` naming it would be ambiguous); then makes `depends_on` naming
    /// a matrix step name each of its expansions.
    mutating func resolveMatrixGroups(_ steps: inout [Step]) throws(EngineError) {
        var groups: [String: [String]] = [:]
        var groupIndex: [String: Int] = [:]
        for (index, step) in steps.enumerated() {
            if let group = step.matrix?.step {
                groups[group, default: []].append(step.id)
                if groupIndex[group] == nil { groupIndex[group] = index }
            }
        }
        dependencyPositions = steps.map { Array($0.dependsOn.indices) }
        guard !groups.isEmpty else { return }
        func describe(_ index: Int) -> String {
            let step = steps[index]
            let at = stepLocations[index]
            if let group = step.matrix?.step {
                return "the expansion \"\(step.id)\" of matrix step \"\(group)\" (steps[\(fileIndexes[index])], \(at.line):\(at.column))"
            }
            return "step \"\(step.id)\" (steps[\(fileIndexes[index])], \(at.line):\(at.column))"
        }
        var first: [String: Int] = [:]
        first.reserveCapacity(steps.count)
        for (index, step) in steps.enumerated() {
            if let earlier = first[step.id] {
                // Two plain steps: PlanGraph's duplicate-id error says it.
                guard steps[earlier].matrix != nil || step.matrix != nil else { continue }
                throw error(stepLocations[index], "steps[\(fileIndexes[index])]",
                            "\(describe(index)) has the same id as \(describe(earlier))")
            }
            first[step.id] = index
        }
        for (group, index) in groupIndex.sorted(by: { $0.value < $1.value }) {
            if let other = first[group] {
                throw error(stepLocations[index], "steps[\(fileIndexes[index])].id",
                            "matrix step \"\(group)\" has the id of \(describe(other)), so depends_on [\"\(group)\"] "
                            + "would be ambiguous")
            }
        }
        for index in steps.indices {
            guard steps[index].dependsOn.contains(where: { groups[$0] != nil }) else { continue }
            var dependsOn: [String] = []
            var locations: [SourceLocation] = []
            var positions: [Int] = []
            for (position, dependency) in steps[index].dependsOn.enumerated() {
                let named = groups[dependency] ?? [dependency]
                dependsOn += named
                locations += Array(repeating: dependencyLocations[index][position], count: named.count)
                positions += Array(repeating: position, count: named.count)
            }
            steps[index].dependsOn = dependsOn
            dependencyLocations[index] = locations
            dependencyPositions[index] = positions
        }
    }

    /// Replaces `${matrix.KEY}` by the value of the combination being decoded; a key the matrix
    /// does not have (or has only in other combinations), or any reference outside a matrix step,
    /// is a located error.
    func substituteMatrix(_ text: String, _ location: SourceLocation, _ path: String, step: String?,
                          escaping: Bool) throws(EngineError) -> String {
        do {
            return try MatrixReferences.substitute(text, matrix: matrixInScope?.instance, escaping: escaping)
        } catch {
            guard case .unknownKey(let key) = error else { preconditionFailure("MatrixReferences has one failure") }
            guard let scope = matrixInScope else {
                let owner = step.map { "step \"\($0)\" has no \"matrix\"" } ?? "globals are not part of a matrix step"
                throw self.error(location, path, "${matrix.\(key)} has no value: \(owner)")
            }
            if scope.keys.contains(key) {
                throw self.error(location, path, "${matrix.\(key)} has no value in the expansion \"\(step ?? "")\" "
                                 + "(its values: \(scope.instance.summary)): not every combination has \(key)")
            }
            let hint = Suggestion.closest(to: key, among: scope.keys).map { " (did you mean ${matrix.\($0)}?)" } ?? ""
            throw self.error(location, path, "unknown matrix key ${matrix.\(key)} in step \"\(scope.instance.step)\"\(hint); "
                             + "its keys are \(scope.keys.joined(separator: ", "))")
        }
    }
}

/// One JSON object of a plan being decoded (``StrictFields``), every error an ``EngineError``
/// (`invalidPlan`, exit 2).
private typealias Fields = StrictFields<EngineError>

extension StrictFields<EngineError> {
    /// Opens an object of the plan at `decoder`'s file; the root is called "a plan".
    fileprivate init(_ node: JSONNode, path: String, allowed: [String], decoder: Locator,
                     elsewhere: [String: String] = [:]) throws(EngineError) {
        try self.init(node, path: path, allowed: allowed, file: decoder.displayPath, what: path.isEmpty ? "a plan" : path,
                      elsewhere: elsewhere)
    }
}
