import Orchestration

/// What a user asked of a stage's selection on the command line (`--tags`, `--filter`,
/// `--lifecycle`, and for the pipeline `--from A --to B ...`).
public struct SelectionRequest: Sendable, Hashable {
    /// `--tags a,b`: a selected component has at least one of them.
    public var tags: [String]?
    /// `--filter 'k=v,k=v'`: ANDed with the stage's filter.
    public var filter: ComponentFilter?
    /// `--lifecycle L,...`: replaces the stage's lifecycle phases.
    public var lifecycle: [Component.Lifecycle]?
    /// The pipeline's components in order (`--from` then every `--to`).
    public var chain: [String]

    /// Creates a request.
    public init(tags: [String]? = nil, filter: ComponentFilter? = nil, lifecycle: [Component.Lifecycle]? = nil,
                chain: [String] = []) {
        self.tags = tags
        self.filter = filter
        self.lifecycle = lifecycle
        self.chain = chain
    }
}

/// The components a stage runs, in plan order, with the edges between them.
///
/// Selection (SPEC §6):
/// 1. The stage's filter, tags and lifecycle phases: the registry's `stages.<stage>` fields, or
///    SPEC §6's defaults where it names none (``StageDefaults``).
/// 2. The command line narrows it: `--filter` clauses and `--tags` are ANDed with the stage's.
///    Lifecycle is the exception: `--lifecycle` (or a `lifecycle=` clause of `--filter`)
///    *replaces* the stage's phases, because that is how a user asks for `experimental` or
///    `deprecated` components, which the defaults leave out.
/// 3. Dependencies are pulled in: a selected component's `depends_on` are added (transitively)
///    whatever their type, tags or lifecycle, because the registry says it needs them.
/// 4. Deprecated components that end up selected get a warning; experimental ones run only when
///    a lifecycle set names `experimental` explicitly, a pipeline names them, or a selected
///    component depends on them.
///
/// The pipeline stage selects exactly the named components (plus their dependencies) and chains
/// them: each depends on the one named before it.
public struct StageSelection: Sendable {
    /// Why a component is in the selection.
    public enum Reason: Sendable, Hashable {
        /// It matched the stage's selection.
        case matched
        /// A selected component depends on it.
        case dependency(of: String)
        /// The pipeline names it.
        case named
    }

    /// One selected component.
    public struct Entry: Sendable {
        /// The component.
        public var component: Component
        /// Why it is selected.
        public var reason: Reason
        /// Its dependencies in the stage: registry `depends_on`, plus the previous pipeline link.
        public var dependsOn: [String]
    }

    /// The stage.
    public var stage: Stage
    /// The selected components in plan order (registry order; for a pipeline, chain order with
    /// each link's dependencies before it).
    public var entries: [Entry]
    /// The criteria in words, for messages and dry runs.
    public var criteria: String
    /// Warnings to show (deprecated or experimental components that will run).
    public var warnings: [String]

    /// Selects a stage's components.
    /// - Throws: ``EngineError``: exit 3 for a pipeline naming an unknown component, exit 2 for an
    ///   empty selection, a repeated pipeline name, or a pipeline order that contradicts the
    ///   registry's dependencies (a cycle).
    public static func select(stage: Stage, registry: Registry, request: SelectionRequest) throws(EngineError) -> StageSelection {
        precondition(stage != .registry, "the registry stage selects nothing")
        if stage == .pipeline { return try selectPipeline(registry: registry, request: request) }
        let settings = registry.stages[stage] ?? Registry.StageSettings()
        let defaults = StageDefaults.of(stage)
        var stageFilter = settings.filter ?? defaults.filter
        let lifecycle: [Component.Lifecycle]?
        if let asked = request.lifecycle {
            lifecycle = asked
            stageFilter = stageFilter.removing(.lifecycle)
        } else if request.filter?.mentions(.lifecycle) == true {
            lifecycle = nil
            stageFilter = stageFilter.removing(.lifecycle)
        } else if let configured = settings.lifecycle {
            lifecycle = configured
        } else if stageFilter.mentions(.lifecycle) {
            lifecycle = nil
        } else {
            lifecycle = defaults.lifecycle
        }
        let filter = stageFilter.and(request.filter ?? ComponentFilter())
        let tagSets = [settings.tags, request.tags].compactMap { $0 }

        var chosen = Set<String>()
        var reasons: [String: Reason] = [:]
        for component in registry.components {
            guard filter.matches(component) else { continue }
            if let lifecycle, !lifecycle.contains(component.lifecycle) { continue }
            guard tagSets.allSatisfy({ set in component.tags.contains { set.contains($0) } }) else { continue }
            chosen.insert(component.name)
            reasons[component.name] = .matched
        }
        var criteria: [String] = []
        if !filter.clauses.isEmpty { criteria.append(filter.description) }
        for set in tagSets { criteria.append("tags=\(set.joined(separator: "|"))") }
        if let lifecycle { criteria.append("lifecycle=\(lifecycle.map(\.rawValue).joined(separator: "|"))") }
        let criteriaText = criteria.isEmpty ? "every component" : criteria.joined(separator: ", ")
        guard !chosen.isEmpty else {
            throw EngineError(.usage, "stage \(stage) selects no component (\(criteriaText)); check the filters or the registry")
        }
        pullDependencies(into: &chosen, reasons: &reasons, registry: registry, order: registry.components.map(\.name))
        let entries = registry.components.filter { chosen.contains($0.name) }.map {
            Entry(component: $0, reason: reasons[$0.name] ?? .matched, dependsOn: $0.dependsOn)
        }
        return StageSelection(stage: stage, entries: entries, criteria: criteriaText, warnings: warnings(for: entries))
    }

    private static func selectPipeline(registry: Registry, request: SelectionRequest) throws(EngineError) -> StageSelection {
        guard !request.chain.isEmpty else {
            throw EngineError(.usage, "the pipeline stage needs its components: --from A --to B [--to C ...]")
        }
        var seen = Set<String>()
        for name in request.chain {
            guard registry.component(named: name) != nil else { throw registry.unknownComponent(name, context: "pipeline") }
            guard seen.insert(name).inserted else {
                throw EngineError(.usage, "pipeline names component \"\(name)\" twice; a pipeline is a chain of distinct components")
            }
        }
        var chosen = seen
        var reasons: [String: Reason] = [:]
        for name in request.chain { reasons[name] = .named }
        pullDependencies(into: &chosen, reasons: &reasons, registry: registry, order: registry.components.map(\.name))
        // Plan order: each link after the dependencies it pulled in.
        var order: [String] = []
        var placed = Set<String>()
        func place(_ name: String) {
            var stack: [(String, Bool)] = [(name, false)]
            while let (current, expanded) = stack.popLast() {
                if placed.contains(current) { continue }
                if expanded {
                    placed.insert(current)
                    order.append(current)
                    continue
                }
                stack.append((current, true))
                let deps = registry.component(named: current)?.dependsOn ?? []
                for dep in deps.reversed() where !placed.contains(dep) && reasons[dep] != .named { stack.append((dep, false)) }
            }
        }
        for name in request.chain { place(name) }
        for name in registry.components.map(\.name) where chosen.contains(name) && !placed.contains(name) { place(name) }
        var chainPosition: [String: Int] = [:]
        for (position, name) in request.chain.enumerated() { chainPosition[name] = position }
        var entries: [Entry] = []
        for name in order {
            let component = registry.component(named: name)!
            var dependsOn = component.dependsOn
            if let position = chainPosition[name], position > 0, !dependsOn.contains(request.chain[position - 1]) {
                dependsOn.append(request.chain[position - 1])
            }
            entries.append(Entry(component: component, reason: reasons[name] ?? .named, dependsOn: dependsOn))
        }
        do {
            _ = try PlanGraph(ids: entries.map(\.component.name), dependsOn: entries.map(\.dependsOn))
        } catch {
            let names = entries.map(\.component.name)
            if case .cycle(let path) = error.issue {
                throw EngineError(.usage, "the pipeline order contradicts the registry's dependencies: "
                                  + path.map { names[$0] }.joined(separator: " -> ") + " (each depends on the next)")
            }
            throw EngineError(.usage, "pipeline: \(PlanGraph.describe(error.issue, ids: names))")
        }
        return StageSelection(stage: .pipeline, entries: entries, criteria: "pipeline " + request.chain.joined(separator: " -> "),
                              warnings: warnings(for: entries))
    }

    /// Adds every (transitive) dependency of the chosen components.
    private static func pullDependencies(into chosen: inout Set<String>, reasons: inout [String: Reason],
                                         registry: Registry, order: [String]) {
        var stack = order.filter { chosen.contains($0) }.reversed().map { $0 }
        while let name = stack.popLast() {
            for dep in registry.component(named: name)?.dependsOn ?? [] where !chosen.contains(dep) {
                chosen.insert(dep)
                reasons[dep] = .dependency(of: name)
                stack.append(dep)
            }
        }
    }

    private static func warnings(for entries: [Entry]) -> [String] {
        var warnings: [String] = []
        for entry in entries {
            let component = entry.component
            var why = ""
            if case .dependency(let dependent) = entry.reason { why = " (pulled in as a dependency of \"\(dependent)\")" }
            switch component.lifecycle {
            case .deprecated:
                warnings.append("component \"\(component.name)\" is deprecated\(why); it still runs, but plan to replace it")
            case .experimental:
                warnings.append("component \"\(component.name)\" is experimental\(why); it runs because it was asked for")
            case .canary, .stable:
                break
            }
        }
        return warnings
    }

    /// The entry of a component, if selected.
    public func entry(named name: String) -> Entry? {
        entries.first { $0.component.name == name }
    }
}

/// SPEC §6's defaults for a stage when the registry names none.
public struct StageDefaults: Sendable {
    /// The filter.
    public var filter: ComponentFilter
    /// The lifecycle phases.
    public var lifecycle: [Component.Lifecycle]
    /// The mode.
    public var mode: StageMode

    /// The defaults of `stage`: pre-commit = validators tagged `pre-commit`, canary or stable,
    /// sync; test = components of type test, canary or stable, sync; ci = every canary or stable
    /// component, async; pipeline = sync.
    public static func of(_ stage: Stage) -> StageDefaults {
        let usual: [Component.Lifecycle] = [.canary, .stable]
        switch stage {
        case .preCommit:
            return StageDefaults(filter: ComponentFilter(clauses: [.init(key: .type, values: ["validator"]),
                                                                   .init(key: .tags, values: ["pre-commit"])]),
                                 lifecycle: usual, mode: .sync)
        case .test:
            return StageDefaults(filter: ComponentFilter(clauses: [.init(key: .type, values: ["test"])]), lifecycle: usual, mode: .sync)
        case .ci:
            return StageDefaults(filter: ComponentFilter(), lifecycle: usual, mode: .async)
        case .pipeline, .registry:
            return StageDefaults(filter: ComponentFilter(), lifecycle: Component.Lifecycle.allCases, mode: .sync)
        }
    }
}
