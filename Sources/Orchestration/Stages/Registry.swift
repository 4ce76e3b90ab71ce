import Orchestration
import Synchronization

/// The component registry (`omnibase.registry.json`, SPEC §6): components, per-stage defaults,
/// hooks, gates and circuit-breaker settings.
public struct Registry: Sendable {
    /// A stage's defaults from the registry's `stages` section; nil fields fall back to SPEC §6's.
    public struct StageSettings: Sendable, Hashable {
        /// `filter`: clauses every selected component matches.
        public var filter: ComponentFilter?
        /// `tags`: a selected component has at least one of them.
        public var tags: [String]?
        /// `lifecycle`: the phases selected.
        public var lifecycle: [Component.Lifecycle]?
        /// `mode`: `sync` or `async`.
        public var mode: StageMode?
        /// `max_concurrency` in async mode.
        public var maxConcurrency: Int?

        /// Creates settings.
        public init(filter: ComponentFilter? = nil, tags: [String]? = nil, lifecycle: [Component.Lifecycle]? = nil,
                    mode: StageMode? = nil, maxConcurrency: Int? = nil) {
            self.filter = filter
            self.tags = tags
            self.lifecycle = lifecycle
            self.mode = mode
            self.maxConcurrency = maxConcurrency
        }
    }

    /// A command run before (`pre`) or after (`post`) a stage.
    public struct Hook: Sendable, Hashable {
        /// A name for reports and log files.
        public var name: String
        /// The program.
        public var command: String
        /// Its arguments.
        public var arguments: [String]
        /// Its time limit in seconds; nil = none.
        public var timeoutSeconds: Double?
        /// Its working folder, relative to the registry's folder.
        public var workingDirectory: String?
        /// Variables added to the environment.
        public var environment: [String: String]
        /// The stages it runs around; nil = every stage that runs components.
        public var stages: [Stage]?

        /// Creates a hook.
        public init(name: String, command: String, arguments: [String] = [], timeoutSeconds: Double? = nil,
                    workingDirectory: String? = nil, environment: [String: String] = [:], stages: [Stage]? = nil) {
            self.name = name
            self.command = command
            self.arguments = arguments
            self.timeoutSeconds = timeoutSeconds
            self.workingDirectory = workingDirectory
            self.environment = environment
            self.stages = stages
        }

        /// Whether the hook runs around `stage`.
        public func applies(to stage: Stage) -> Bool { stages?.contains(stage) ?? true }
    }

    /// A condition a stage needs before anything of it runs.
    public struct Gate: Sendable, Hashable {
        /// Stages that must have succeeded on the current git commit.
        public var requirePassed: [Stage]

        /// Creates a gate.
        public init(requirePassed: [Stage]) { self.requirePassed = requirePassed }
    }

    /// The components, in file order (the order `sync` follows where dependencies allow).
    public var components: [Component] {
        didSet { positions = Self.positions(of: components) }
    }
    /// Each name's first position in ``components``: built once per change of the array, so that
    /// ``component(named:)``, which selection calls once per selected component, is a hash
    /// lookup and a stage's selection is linear in the registry's size (with a scan per call,
    /// a dry run of 60,000 components took 50 s in a release build; 2 s with the index).
    private var positions: [String: Int]
    /// Per-stage defaults.
    public var stages: [Stage: StageSettings]
    /// Hooks run before every stage, in order.
    public var preHooks: [Hook]
    /// Hooks run after every stage, in order.
    public var postHooks: [Hook]
    /// Gates by stage.
    public var gates: [Stage: Gate]
    /// The registry-wide circuit-breaker settings; nil = no breakers unless a component has its own.
    public var breaker: BreakerSettings?

    /// Creates a registry.
    public init(components: [Component], stages: [Stage: StageSettings] = [:], preHooks: [Hook] = [],
                postHooks: [Hook] = [], gates: [Stage: Gate] = [:], breaker: BreakerSettings? = nil) {
        self.components = components
        positions = Self.positions(of: components)
        self.stages = stages
        self.preHooks = preHooks
        self.postHooks = postHooks
        self.gates = gates
        self.breaker = breaker
    }

    /// The component named `name`, if any (the first one, should a registry built in code hold
    /// the name twice): a hash lookup, not a scan of the components.
    public func component(named name: String) -> Component? {
        Self.lookups?.count(1)
        return positions[name].map { components[$0] }
    }

    /// The names of the components that depend on `name` directly, in registry order: one pass
    /// over the components (call it once, not once per component).
    public func dependents(of name: String) -> [String] {
        Self.lookups?.count(components.count)
        return components.filter { $0.dependsOn.contains(name) }.map(\.name)
    }

    private static func positions(of components: [Component]) -> [String: Int] {
        var positions: [String: Int] = [:]
        positions.reserveCapacity(components.count)
        for (index, component) in components.enumerated() where positions[component.name] == nil {
            positions[component.name] = index
        }
        return positions
    }

    /// Counts the work of the registry's lookups in the current task: one for each
    /// ``component(named:)``, one per component for each ``dependents(of:)``. Tests set it to check
    /// that selecting from n components costs O(n) lookups, not one per pair of components.
    @TaskLocal package static var lookups: LookupCounter?

    /// The breaker settings that apply to a component, or nil when it has no breaker.
    public func breakerSettings(for component: Component) -> BreakerSettings? {
        switch component.breaker {
        case .inherited: return breaker
        case .custom(let settings): return settings
        case .disabled: return nil
        }
    }

    /// The error for a component name that is not in the registry (exit 3), with a suggestion.
    public func unknownComponent(_ name: String, context: String) -> EngineError {
        let hint = Suggestion.closest(to: name, among: components.map(\.name)).map { " (did you mean \"\($0)\"?)" } ?? ""
        return EngineError(.unknownReference, "\(context): no component \"\(name)\" in the registry\(hint)")
    }
}

/// A count shared by the tasks of a test (``Registry/lookups``).
package final class LookupCounter: Sendable {
    private let total = Mutex(0)

    /// Creates a counter at zero.
    package init() {}

    /// Adds `amount`.
    package func count(_ amount: Int) { total.withLock { $0 += amount } }

    /// The count so far.
    package var value: Int { total.withLock { $0 } }
}

/// A registry read from a file, with what is needed to edit it and to locate errors.
public struct LoadedRegistry: Sendable {
    /// The registry.
    public var registry: Registry
    /// The file as named by the user (for messages).
    public var displayPath: String
    /// The file's absolute folder: relative `cwd`s resolve against it, and stages run in it.
    public var directory: String
    /// The file's bytes (the configuration snapshot of a stage run).
    public var bytes: [UInt8]
    /// The file as a JSON document, members in file order (what `registry add|remove` edits).
    public var document: JSONValue
}
