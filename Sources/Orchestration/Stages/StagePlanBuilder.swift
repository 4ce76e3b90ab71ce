import Foundation
import Orchestration

/// Translates a stage's selected components into a plan document (SPEC §1) and loads it through
/// ``PlanLoader``, so a stage runs on the same engine as `run` with every guarantee: timeouts,
/// process groups, durable state, `resume`, `replay`, reports.
///
/// | component | plan step |
/// | --- | --- |
/// | `name` | `id` (and `name` from `description`) |
/// | `command`, `args`, `cwd`, `env`, `timeout_sec`, `critical`, `on_failure`, `tags` | the same fields |
/// | `depends_on` (plus the pipeline link) | `depends_on` |
/// | `idempotent: true` | `retries` (default 2), `retry_backoff: "exponential"`, `retry_delay_sec`, `max_retry_delay_sec` |
/// | `idempotent: false`, or a half-open breaker's trial | `retries: 0` |
///
/// The plan's `globals.working_dir` is the registry's folder, so relative paths resolve as in
/// the registry. Registries have no variables: every `$` is written as `$$`, so it reaches the
/// command unchanged. The document is the run's stored snapshot, which `replay` runs again: its
/// `metadata` keeps the registry as it was read (`registry_snapshot`, the whole document: hooks,
/// gates, breaker settings) and its folder (`registry_directory`), so a replay needs nothing else
/// (``StageReplay``).
public enum StagePlanBuilder {
    /// The `metadata` member holding the registry document a stage run was built from.
    static let registrySnapshotKey = "registry_snapshot"
    /// The `metadata` member holding the registry's absolute folder.
    static let registryDirectoryKey = "registry_directory"

    /// The plan id of a stage's runs: `stage-<stage>`.
    public static func planID(_ stage: Stage) -> String { "stage-\(stage.rawValue)" }

    /// The plan document.
    /// - Parameters:
    ///   - entries: the components to run, in plan order; their dependencies must all be among them.
    ///   - trials: components whose breaker is half-open: one attempt only.
    ///   - maxConcurrency: `globals.max_concurrency`, if set.
    public static func document(stage: Stage, registry: LoadedRegistry, entries: [StageSelection.Entry],
                                trials: Set<String> = [], maxConcurrency: Int? = nil) -> JSONValue {
        var globals: [JSONValue.Member] = [.init("working_dir", .string(escape(registry.directory)))]
        if let maxConcurrency { globals.append(.init("max_concurrency", .int(maxConcurrency))) }
        let steps = entries.map { step($0, trial: trials.contains($0.component.name)) }
        return .object([
            "plan_id": .string(planID(stage)),
            "version": "1",
            "metadata": .object([
                .init("stage", .string(stage.rawValue)),
                .init("registry", .string(registry.displayPath)),
                .init(registryDirectoryKey, .string(registry.directory)),
                .init(registrySnapshotKey, registry.document),
            ]),
            "globals": .object(globals),
            "steps": .array(steps),
        ])
    }

    /// The plan, loaded and validated by ``PlanLoader``.
    /// - Throws: ``EngineError`` exit 2 if the document is not a valid plan (a bug in the
    ///   translation or a registry the loader let through).
    public static func load(stage: Stage, registry: LoadedRegistry, entries: [StageSelection.Entry],
                            trials: Set<String> = [], maxConcurrency: Int? = nil) throws(EngineError) -> LoadedPlan {
        let text = document(stage: stage, registry: registry, entries: entries, trials: trials,
                            maxConcurrency: maxConcurrency).serialized(pretty: true) + "\n"
        let source = PlanSource(displayPath: "\(registry.displayPath) (stage \(stage))", directory: registry.directory,
                                bytes: Array(text.utf8), overrides: [:])
        return try PlanLoader.load(source)
    }

    static func step(_ entry: StageSelection.Entry, trial: Bool) -> JSONValue {
        let component = entry.component
        var members: [JSONValue.Member] = [.init("id", .string(component.name))]
        if let description = component.description { members.append(.init("name", .string(description))) }
        members += [
            .init("command", .string(escape(component.command))),
            .init("args", .array(component.arguments.map { .string(escape($0)) })),
            .init("depends_on", .array(entry.dependsOn.map { .string($0) })),
        ]
        if let timeout = component.timeoutSeconds { members.append(.init("timeout_sec", .double(timeout))) }
        let retries = component.idempotent && !trial ? component.retries : 0
        members.append(.init("retries", .int(retries)))
        if retries > 0 {
            members += [
                .init("retry_delay_sec", .double(component.retryDelaySeconds)),
                .init("retry_backoff", "exponential"),
                .init("max_retry_delay_sec", .double(component.maxRetryDelaySeconds)),
            ]
        }
        members += [
            .init("critical", .bool(component.critical)),
            .init("on_failure", .string(component.onFailure.rawValue)),
        ]
        if let cwd = component.workingDirectory { members.append(.init("cwd", .string(escape(cwd)))) }
        if !component.environment.isEmpty {
            members.append(.init("env", .object(component.environment.sorted { $0.key < $1.key }
                .map { .init($0.key, .string(escape($0.value))) })))
        }
        members.append(.init("tags", .array(component.tags.map { .string($0) })))
        return .object(members)
    }

    /// `$` doubled: the plan loader turns `$$` back into `$` and expands nothing else.
    static func escape(_ text: String) -> String {
        text.contains("$") ? text.replacingOccurrences(of: "$", with: "$$") : text
    }
}
