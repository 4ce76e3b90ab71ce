import Foundation

/// Everything needed to load a plan again: the file's bytes, where it was and the `--var`
/// overrides. Stored with every run so `resume` and `replay` need nothing else.
public struct PlanSource: Sendable, Hashable {
    /// The plan file as given on the command line (for messages).
    public var displayPath: String
    /// The plan file's absolute folder: relative `cwd` and `working_dir` resolve against it.
    public var directory: String
    /// The file's bytes.
    public var bytes: [UInt8]
    /// `--var NAME=VALUE` overrides.
    public var overrides: [String: String]
    /// Names of secret `--var` overrides whose values were not stored (sorted): `resume` and
    /// `replay` ask for them again (``supplying(_:)``).
    public var withheldSecrets: [String]
    /// Short checks (``SecretCheck``) of each withheld secret's values, by name: one for the value
    /// the run was started with, one more for each other value a `resume` gave. A report is
    /// given the values to mask the logs with, and refuses one that fails every check. Runs
    /// stored before checks have none, and any value passes.
    public var secretChecks: [String: [String]]
    /// The text of every env file the plan names (`globals.env_file`, steps' `env_file`), by
    /// absolute path, as read when the run was created: nil until a load reads them from disk
    /// (a fresh plan), set in a stored run's source so `resume` and `replay` read no file.
    public var envFiles: [String: String]?

    /// Creates a source.
    public init(displayPath: String, directory: String, bytes: [UInt8], overrides: [String: String],
                withheldSecrets: [String] = [], secretChecks: [String: [String]] = [:],
                envFiles: [String: String]? = nil) {
        self.displayPath = displayPath
        self.directory = directory
        self.bytes = bytes
        self.overrides = overrides
        self.withheldSecrets = withheldSecrets
        self.secretChecks = secretChecks
        self.envFiles = envFiles
    }

    /// The source as it may be stored: the values of overrides whose names are secret are left
    /// out, their names kept in ``withheldSecrets`` and a check of each value in ``secretChecks``.
    public func withholding(_ isSecret: (String) -> Bool) -> PlanSource {
        var stored = self
        for (name, value) in overrides where isSecret(name) {
            stored.overrides[name] = nil
            stored.secretChecks[name] = [SecretCheck.make(value)]
            stored.withheldSecrets.append(name)
        }
        stored.withheldSecrets = Set(stored.withheldSecrets).sorted()
        return stored
    }

    /// The source with the withheld secrets' values given again (`resume`, `replay`: a value may
    /// differ from the run's, a token rotated meanwhile).
    /// - Returns: the completed source, or the names still missing (sorted) and the given names
    ///   that were not withheld.
    public func supplying(_ values: [String: String]) -> Result<PlanSource, SecretsMismatch> {
        let unexpected = values.keys.filter { !withheldSecrets.contains($0) }.sorted()
        let missing = withheldSecrets.filter { values[$0] == nil }
        guard unexpected.isEmpty && missing.isEmpty else {
            return .failure(SecretsMismatch(missing: missing, unexpected: unexpected, withheld: withheldSecrets))
        }
        var complete = self
        for (name, value) in values { complete.overrides[name] = value }
        complete.withheldSecrets = []
        return .success(complete)
    }

    /// The given secret values that fail every check of their name: values the run never ran
    /// with (a typo), which would mask the wrong text (sorted names).
    public func unknownSecretValues(_ values: [String: String]) -> [String] {
        values.filter { name, value in
            guard let checks = secretChecks[name], !checks.isEmpty else { return false }
            return !checks.contains { SecretCheck.matches($0, value: value) != false }
        }.keys.sorted()
    }

    /// The withheld secrets that ran with more than one value (a `resume` gave another): a
    /// report given one value per name cannot mask the others.
    public var secretsWithSeveralValues: [String] {
        secretChecks.filter { $0.value.count > 1 }.keys.sorted()
    }

    /// The checks with one added for each given value that passes none of its name's checks:
    /// what a `resume` records before it runs with a value the run has not seen.
    public func secretChecks(adding values: [String: String]) -> [String: [String]] {
        var checks = secretChecks
        for name in unknownSecretValues(values) { checks[name, default: []].append(SecretCheck.make(values[name] ?? "")) }
        return checks
    }

    /// The source with ``SecretMask/replacement`` for each withheld secret: it loads (a plan
    /// that needs the variable finds one) for showing the run, never for running it.
    public func withPlaceholders() -> PlanSource {
        var shown = self
        for name in withheldSecrets { shown.overrides[name] = SecretMask.replacement }
        shown.withheldSecrets = []
        return shown
    }

    /// Why withheld secrets could not be given again.
    public struct SecretsMismatch: Error, Sendable, Hashable {
        /// Withheld names without a value.
        public var missing: [String]
        /// Given names that were not withheld.
        public var unexpected: [String]
        /// Every withheld name.
        public var withheld: [String]

        /// One sentence for a user (after "run RUN_ID ").
        public var sentence: String {
            if let name = unexpected.first {
                let allowed = withheld.isEmpty ? "it stored every variable it needs"
                    : "only its secret variables whose values were not stored can be given (\(withheld.joined(separator: ", ")))"
                return "keeps its stored variables, so --var \(name) cannot be given: \(allowed)"
            }
            let flags = missing.map { "--var \($0)=VALUE" }.joined(separator: " ")
            return "used secret variables whose values were not stored (\(missing.joined(separator: ", "))): pass them again with \(flags)"
        }
    }
}

/// A loaded plan with its graph and the source it came from.
public struct LoadedPlan: Sendable {
    /// The resolved plan.
    public var plan: Plan
    /// Its validated DAG.
    public var graph: PlanGraph
    /// Where it came from.
    public var source: PlanSource

    init(plan: Plan, graph: PlanGraph, source: PlanSource) {
        self.plan = plan
        self.graph = graph
        self.source = source
    }

    /// A plan built in code, validated (ids, dependencies, cycles) as a plan file would be.
    ///
    /// A run of it is durable like any other (``RunSession/start(_:request:observers:stopRequests:runID:parentRunID:runner:)``),
    /// but its steps (closures among them) are not stored as a file: `resume` and `replay` of
    /// such a run take the plan again from the caller.
    ///
    /// ```swift
    /// let plan = Plan(id: "nightly", steps: [.closure("fetch") { _ in try await fetch() }])
    /// let report = try await RunSession(stateDirectory: ".state").start(try LoadedPlan(plan))
    /// ```
    /// - Throws: ``EngineError`` (exit 2) naming the first problem of the DAG or of its steps'
    ///   output references.
    public init(_ plan: Plan) throws(EngineError) {
        let graph: PlanGraph
        do { graph = try PlanGraph(steps: plan.steps) } catch {
            throw EngineError(.invalidPlan, "plan \(plan.id) (built in code): \(PlanGraph.describe(error.issue, ids: plan.steps.map(\.id)))")
        }
        // Output references (``OutputBindings``) name steps the referring step depends on.
        let references = plan.steps.enumerated().flatMap { index, step in
            (step.processCommand?.outputBindings?.references ?? []).map { (step: index, reference: $0) }
        }
        if let (position, issue) = graph.firstOutputReferenceIssue(references) {
            let found = references[position]
            throw EngineError(.invalidPlan, "plan \(plan.id) (built in code): "
                              + issue.describe(stepID: graph.ids[found.step], reference: found.reference, ids: graph.ids))
        }
        if let (index, problem) = graph.firstConditionProblem(plan.steps, variables: plan.variables) {
            throw EngineError(problem.kind == .unknownVariable ? .unknownVariable : .invalidPlan,
                              "plan \(plan.id) (built in code): step \"\(plan.steps[index].id)\": column \(problem.column) of the "
                              + "condition: \(problem.message)")
        }
        self.init(plan: plan, graph: graph, source: .inCode(planID: plan.id))
    }
}

extension PlanSource {
    /// Each step's `"if"` text by step id, read from the stored plan file without loading it
    /// (no variables needed, for showing a run); empty when the file holds none or is not a plan.
    public var conditionTexts: [String: String] {
        guard bytes.firstRange(of: Array("\"if\"".utf8)) != nil,
              let root = try? StrictJSONParser.parse(bytes, limits: .init(maxBytes: PlanLoader.maxFileBytes, maxDepth: 64)),
              let steps = root.objectValue?["steps"]?.arrayValue else { return [:] }
        var texts: [String: String] = [:]
        for step in steps {
            guard let object = step.objectValue, let id = object["id"]?.stringValue,
                  let text = object["if"]?.stringValue else { continue }
            texts[id] = text
        }
        return texts
    }

    /// The source recorded for a plan built in code: no file, nothing to load it from.
    static func inCode(planID: String) -> PlanSource {
        PlanSource(displayPath: "(plan \(planID) built in code)", directory: FileManager.default.currentDirectoryPath,
                   bytes: [], overrides: [:])
    }

    /// Whether the run's plan was built in code (nothing stored to load it from): no plan file
    /// is empty, so empty bytes say so.
    public var isInCode: Bool { bytes.isEmpty }
}
