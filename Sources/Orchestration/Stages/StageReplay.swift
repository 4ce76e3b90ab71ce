import Foundation
import Orchestration

/// What `orch --mode replay` runs again: an earlier run of the stage, from what that run stored
/// and nothing else (SPEC §3), so today's registry file is neither read nor needed.
///
/// A stage run's plan snapshot keeps the registry as it was read (``StagePlanBuilder``): the
/// replay runs the same components (the snapshot's steps, with their edges) as that registry
/// defined them, around that registry's hooks, behind its gate, with its breaker settings. The
/// circuit breakers' *state* is today's (`breakers.json`): a replay is a new run, and an open
/// circuit is not started in it (SPEC §6), a half-open one is a trial.
///
/// Runs stored before the registry was kept in the snapshot have only their plan: they are
/// replayed from it with no hooks and no gate, and a component gets the built-in breaker
/// settings (``RegistryLoader/defaultBreaker``) when `breakers.json` has a record of it (it had
/// a breaker then), none otherwise.
struct StageReplay: Sendable {
    /// The run replayed.
    var record: RunStore.RunRecord
    /// The registry of that time (for an older run, one made of its plan's steps).
    var registry: LoadedRegistry
    /// The run's components in plan order, with the edges of its plan.
    var entries: [StageSelection.Entry]
    /// What the run was asked (concurrency, `--from`/`--to`, plan order, executor, keep-going,
    /// labels).
    var request: RunRequest
    /// The mode the run ran its components in (`sync`, `async` or `profile`).
    var runMode: StageMode
    /// The snapshot's `globals.max_concurrency`.
    var maxConcurrency: Int?
    /// An older run's plan snapshot as JSON, replayed as it is (trials aside); nil when the
    /// registry was stored.
    var legacySnapshot: JSONValue?

    /// The run to replay (`--run-id`, else the stage's latest run) and its configuration.
    /// - Throws: ``EngineError``: exit 3 for no such run, 2 for a run of another stage or one
    ///   not finished, 4 when its snapshot does not hold together.
    static func load(stage: Stage, runID: String?, stateDirectory: StateDirectory,
                     breakers: () throws(EngineError) -> [String: CircuitBreaker]) throws(EngineError) -> StageReplay {
        let record = try find(stage: stage, runID: runID, stateDirectory: stateDirectory)
        let request = RunRequest(json: record.options, stage: record.stage)
        let loadedPlan = try PlanLoader.load(record.source)
        let runMode = request.labels[StageLabels.mode].flatMap(StageMode.init(rawValue:)) ?? .sync
        let snapshot: JSONValue
        do { snapshot = try StrictJSONParser.parse(record.source.bytes).toValue() } catch {
            throw EngineError(.protocolViolation, "run \(record.runID): its plan snapshot is not JSON (\(error.description))")
        }
        let metadata = snapshot["metadata"]
        let displayPath = metadata?["registry"]?.stringValue ?? record.source.displayPath
        let maxConcurrency = snapshot["globals"]?["max_concurrency"]?.intValue

        guard let document = metadata?[StagePlanBuilder.registrySnapshotKey],
              let directory = metadata?[StagePlanBuilder.registryDirectoryKey]?.stringValue else {
            // A run from before the registry was stored: its plan is all there is.
            let recorded = try breakers()
            var components: [Component] = []
            for step in loadedPlan.plan.steps {
                components.append(Component(name: step.id, kind: .tool, command: "-", critical: step.critical,
                                            breaker: recorded[step.id] != nil ? .custom(RegistryLoader.defaultBreaker) : .disabled))
            }
            let registry = LoadedRegistry(registry: Registry(components: components), displayPath: displayPath,
                                          directory: record.source.directory, bytes: [], document: .null)
            let entries = zip(components, loadedPlan.plan.steps).map {
                StageSelection.Entry(component: $0, reason: .matched, dependsOn: $1.dependsOn)
            }
            return StageReplay(record: record, registry: registry, entries: entries, request: request, runMode: runMode,
                               maxConcurrency: maxConcurrency, legacySnapshot: snapshot)
        }

        let bytes = Array((document.serialized(pretty: true) + "\n").utf8)
        let registry: LoadedRegistry
        do {
            registry = try RegistryLoader.load(bytes: bytes, displayPath: displayPath, directory: directory)
        } catch {
            throw EngineError(.invalidPlan, "the registry stored with run \(record.runID) is not valid for this release: \(error.message)")
        }
        var entries: [StageSelection.Entry] = []
        for step in loadedPlan.plan.steps {
            guard let component = registry.registry.component(named: step.id) else {
                throw EngineError(.protocolViolation, "run \(record.runID): its plan snapshot runs component \"\(step.id)\", "
                                  + "which the registry stored with it does not define")
            }
            entries.append(StageSelection.Entry(component: component, reason: stage == .pipeline ? .named : .matched,
                                                dependsOn: step.dependsOn))
        }
        return StageReplay(record: record, registry: registry, entries: entries, request: request, runMode: runMode,
                           maxConcurrency: maxConcurrency, legacySnapshot: nil)
    }

    /// The plan of the replay: the run's components again, the half-open circuits' trials with
    /// one attempt.
    func plan(stage: Stage, trials: Set<String>) throws(EngineError) -> LoadedPlan {
        guard let legacySnapshot else {
            return try StagePlanBuilder.load(stage: stage, registry: registry, entries: entries, trials: trials,
                                             maxConcurrency: maxConcurrency)
        }
        var document = legacySnapshot
        if !trials.isEmpty, case .object(var members) = document,
           let index = members.firstIndex(where: { $0.key == "steps" }), case .array(var steps) = members[index].value {
            for (position, step) in steps.enumerated() {
                guard let id = step["id"]?.stringValue, trials.contains(id), case .object(var fields) = step else { continue }
                fields.removeAll { $0.key == "retries" }
                fields.append(.init("retries", 0))
                steps[position] = .object(fields)
            }
            members[index].value = .array(steps)
            document = .object(members)
        }
        let source = record.source
        return try PlanLoader.load(PlanSource(displayPath: source.displayPath, directory: source.directory,
                                              bytes: Array((document.serialized(pretty: true) + "\n").utf8),
                                              overrides: source.overrides))
    }

    /// The run: `--run-id`, or the stage's latest run; finished, as `replay RUN_ID` requires.
    private static func find(stage: Stage, runID: String?, stateDirectory: StateDirectory) throws(EngineError) -> RunStore.RunRecord {
        let store: RunStore
        do {
            store = try RunStore(stateDirectory: stateDirectory, readOnly: true)
        } catch where error.code == .unknownReference {
            if let runID { throw EngineError(.unknownReference, "no run \(runID) in \(stateDirectory.path) (no run history yet)") }
            throw EngineError(.unknownReference, "no run of stage \(stage) to replay in \(stateDirectory.path) (no run history yet)")
        }
        if let runID {
            guard let record = try store.run(runID) else {
                throw EngineError(.unknownReference, "no run \(runID) in \(stateDirectory.path)")
            }
            guard record.stage == stage.rawValue else {
                let what = record.stage.map { "a run of stage \($0)" } ?? "a plan run, not a stage run"
                throw EngineError(.usage, "run \(runID) is \(what); replay it with 'omnibase-agents replay \(runID)'")
            }
            try record.requireFinishedForReplay()
            return record
        }
        guard let latest = try store.runs(limit: 100_000).first(where: { $0.stage == stage.rawValue }) else {
            throw EngineError(.unknownReference, "no run of stage \(stage) to replay in \(stateDirectory.path)")
        }
        // As `replay RUN_ID`: a finished run only (SPEC section 4).
        try latest.requireFinishedForReplay()
        return latest
    }
}
