import Orchestration

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
    public var components: [Component]
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
        self.stages = stages
        self.preHooks = preHooks
        self.postHooks = postHooks
        self.gates = gates
        self.breaker = breaker
    }

    /// The component named `name`, if any.
    public func component(named name: String) -> Component? {
        components.first { $0.name == name }
    }

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
