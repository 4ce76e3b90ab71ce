import Orchestration

/// One entry of the registry: a tool, validator or test that stages run as a plan step
/// (SPEC §6: "a component runs as a plan step does").
public struct Component: Sendable, Hashable {
    /// What a component is, for selection (`type=...`).
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A program that produces or changes something (a build, a formatter).
        case tool
        /// A check that only reads (a linter, a schema check).
        case validator
        /// A test suite.
        case test
    }

    /// Where a component is in its life (seed 000, "Lifecycle Phase Support").
    public enum Lifecycle: String, Sendable, Hashable, CaseIterable {
        /// New, run by default.
        case canary
        /// Established, run by default.
        case stable
        /// On its way out: runs only when selected, with a WARN line.
        case deprecated
        /// Not ready: runs only when asked for explicitly.
        case experimental
    }

    /// The unique name; also the step id in the stage's plan, so `[A-Za-z0-9][A-Za-z0-9_.-]*`.
    public var name: String
    /// What it is for, shown by `registry list` and `inspect`.
    public var description: String?
    /// `type`.
    public var kind: Kind
    /// `lifecycle` (default `stable`).
    public var lifecycle: Lifecycle
    /// Labels for selection (`--tags`, `tags=...`).
    public var tags: [String]
    /// The program: a path or a name looked up in `PATH`; run without a shell.
    public var command: String
    /// Its arguments, each one argv element.
    public var arguments: [String]
    /// Whether running it twice is harmless: only idempotent components are retried.
    public var idempotent: Bool
    /// The per-attempt time limit in seconds; nil = none.
    public var timeoutSeconds: Double?
    /// Names of components that must finish first.
    public var dependsOn: [String]
    /// Retries of an idempotent component (default 2); always 0 for the others.
    public var retries: Int
    /// The first retry's delay in seconds; it doubles before every further retry (default 1).
    public var retryDelaySeconds: Double
    /// The cap of the retry delay in seconds (default 60).
    public var maxRetryDelaySeconds: Double
    /// Whether the stage fails when this component fails or is not run (default true).
    public var critical: Bool
    /// What a final failure does to the rest of the stage (SPEC §2; default `abort`).
    public var onFailure: FailurePolicy
    /// The working folder, relative to the registry file's folder (default: that folder).
    public var workingDirectory: String?
    /// Variables added to the environment.
    public var environment: [String: String]
    /// The circuit breaker of this component: the registry's settings, its own, or none.
    public var breaker: BreakerSetting

    /// Where a component's circuit-breaker settings come from.
    public enum BreakerSetting: Sendable, Hashable {
        /// The registry's `breaker` section (none there means no breaker).
        case inherited
        /// Its own `breaker` object.
        case custom(BreakerSettings)
        /// `"breaker": false`: never opens.
        case disabled
    }

    /// Creates a component; the defaults are the registry file's.
    public init(name: String, description: String? = nil, kind: Kind, lifecycle: Lifecycle = .stable,
                tags: [String] = [], command: String, arguments: [String] = [], idempotent: Bool = false,
                timeoutSeconds: Double? = nil, dependsOn: [String] = [], retries: Int? = nil,
                retryDelaySeconds: Double = 1, maxRetryDelaySeconds: Double = 60, critical: Bool = true,
                onFailure: FailurePolicy = .abort, workingDirectory: String? = nil,
                environment: [String: String] = [:], breaker: BreakerSetting = .inherited) {
        self.name = name
        self.description = description
        self.kind = kind
        self.lifecycle = lifecycle
        self.tags = tags
        self.command = command
        self.arguments = arguments
        self.idempotent = idempotent
        self.timeoutSeconds = timeoutSeconds
        self.dependsOn = dependsOn
        self.retries = idempotent ? (retries ?? Self.defaultRetries) : 0
        self.retryDelaySeconds = retryDelaySeconds
        self.maxRetryDelaySeconds = maxRetryDelaySeconds
        self.critical = critical
        self.onFailure = onFailure
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.breaker = breaker
    }

    /// Retries of an idempotent component that names none.
    public static let defaultRetries = 2

    /// The argv as it will be executed.
    public var argv: [String] { [command] + arguments }
}

/// Circuit-breaker settings (SPEC §6 `breaker`).
public struct BreakerSettings: Sendable, Hashable {
    /// Consecutive failed invocations that open the circuit (at least 1).
    public var failureThreshold: Int
    /// Seconds the circuit stays open before one trial run is allowed.
    public var cooldownSeconds: Double

    /// Creates settings.
    public init(failureThreshold: Int, cooldownSeconds: Double) {
        self.failureThreshold = failureThreshold
        self.cooldownSeconds = cooldownSeconds
    }
}
