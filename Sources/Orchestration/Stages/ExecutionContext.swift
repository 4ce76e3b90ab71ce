import Foundation
import Orchestration

/// Everything an ``Orchestrator`` works with (seed 000's `ExecCtx`): the environment, the
/// configuration snapshot (the registry as read), the mode, what the user asked for, the state
/// folder, where notices go, and the injected clock of the circuit breakers.
public struct ExecutionContext: Sendable {
    /// The registry file as given (`--registry`, default `omnibase.registry.json`).
    public var registryPath: String
    /// The registry as read when the command started (the configuration snapshot), or nil when
    /// it was not read (the registry stage reads and writes it itself).
    public var registry: LoadedRegistry?
    /// The environment hooks and git commands get (components, as plan steps, inherit the
    /// engine's own).
    public var environment: [String: String]
    /// The folder the command runs in (git commands for gates and labels run here).
    public var workingDirectory: String
    /// The state folder.
    public var stateDirectory: String
    /// `--mode`; nil = the stage's default (registry `stages.<stage>.mode`, else SPEC §6's).
    public var mode: StageMode?
    /// `--tags`, `--filter`, `--lifecycle`, the pipeline's components.
    public var selection: SelectionRequest
    /// `--from` / `--to` for stages other than the pipeline: the part of the stage's DAG to run,
    /// as for `run`.
    public var from: String?
    /// See ``from``.
    public var to: String?
    /// `--max-concurrency` in async mode.
    public var maxConcurrency: Int?
    /// `--executor`: where the stage's components run; nil = local (replay: as the replayed run).
    public var executor: ExecutorKind?
    /// `-k`/`--keep-going`: every failed component skips only its dependents.
    public var keepGoing = false
    /// `--run-id` in replay mode: the run to replay (default: the stage's latest run).
    public var replayRunID: String?
    /// The registry stage's action.
    public var registryAction: RegistryAction?
    /// The breakers' clock.
    public var now: @Sendable () -> Date
    /// Receives warnings as they happen (the CLI prints them on stderr).
    public var notices: @Sendable (String) -> Void
    /// Stop requests (SIGINT/SIGTERM).
    public var stopRequests: AsyncStream<StopReason>?
    /// Watches the run the stage starts (the CLI's progress display); nil for none.
    public var runWatcher: (any StageRunWatcher)?

    /// Creates a context.
    public init(registryPath: String = RegistryLoader.defaultFileName, registry: LoadedRegistry? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                workingDirectory: String = FileManager.default.currentDirectoryPath, stateDirectory: String = ".state",
                mode: StageMode? = nil, selection: SelectionRequest = SelectionRequest(), from: String? = nil,
                to: String? = nil, maxConcurrency: Int? = nil, replayRunID: String? = nil,
                registryAction: RegistryAction? = nil, now: @escaping @Sendable () -> Date = { Date() },
                notices: @escaping @Sendable (String) -> Void = { _ in }, stopRequests: AsyncStream<StopReason>? = nil) {
        self.registryPath = registryPath
        self.registry = registry
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.stateDirectory = stateDirectory
        self.mode = mode
        self.selection = selection
        self.from = from
        self.to = to
        self.maxConcurrency = maxConcurrency
        self.replayRunID = replayRunID
        self.registryAction = registryAction
        self.now = now
        self.notices = notices
        self.stopRequests = stopRequests
        executor = nil
        runWatcher = nil
    }

    /// The registry, which stages that run components need.
    /// - Throws: ``EngineError`` exit 2 when it was not read.
    public func requireRegistry() throws(EngineError) -> LoadedRegistry {
        guard let registry else { throw EngineError(.invalidPlan, "\(registryPath): no registry was read") }
        return registry
    }
}
