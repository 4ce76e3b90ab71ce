import Orchestration

/// What `--mode dry-run` shows: the stage's components in the order they would run, with their
/// fully resolved argv, and what would keep any from running. Nothing is started.
public struct StageDryRun: Sendable {
    /// One component of the dry run.
    public struct Step: Sendable {
        /// The component.
        public var component: Component
        /// Why it is selected.
        public var reason: StageSelection.Reason
        /// Its dependencies in the stage.
        public var dependsOn: [String]
        /// The argv as it would be executed.
        public var argv: [String]
        /// The absolute working folder.
        public var workingDirectory: String
        /// Retries it would get.
        public var retries: Int
        /// Its breaker's state name (`closed`, `open`, `half_open`, `disabled`).
        public var breaker: String
        /// Why it would not run (an open circuit, or a dependency's), or nil.
        public var skipReason: String?
    }

    /// The mode the stage would run in.
    public var runMode: StageMode
    /// The registry file.
    public var registry: String
    /// The selection criteria in words.
    public var criteria: String
    /// Components that would run, in a valid order (the order of `sync`), then those that would not.
    public var steps: [Step]
    /// The pre hooks that would run, in order.
    public var preHooks: [Registry.Hook]
    /// The post hooks that would run, in order.
    public var postHooks: [Registry.Hook]

    /// The dry run as JSON (inside the stage report).
    var members: [JSONValue.Member] {
        func hooks(_ list: [Registry.Hook]) -> JSONValue {
            .array(list.map { .object(["name": .string($0.name), "argv": .array(([$0.command] + $0.arguments).map { .string($0) })]) })
        }
        return [
            .init("run_mode", .string(runMode.rawValue)),
            .init("registry", .string(registry)),
            .init("selection", .string(criteria)),
            .init("hooks", .object(["pre": hooks(preHooks), "post": hooks(postHooks)])),
            .init("steps", .array(steps.map { step in
                .object([
                    "id": .string(step.component.name),
                    "type": .string(step.component.kind.rawValue),
                    "lifecycle": .string(step.component.lifecycle.rawValue),
                    "selected_by": .string(StageReport.describe(step.reason)),
                    "argv": .array(step.argv.map { .string($0) }),
                    "cwd": .string(step.workingDirectory),
                    "depends_on": .array(step.dependsOn.map { .string($0) }),
                    "retries": .int(step.retries),
                    "timeout_sec": step.component.timeoutSeconds.map { .double($0) } ?? .null,
                    "breaker": .string(step.breaker),
                    "will_run": .bool(step.skipReason == nil),
                    "reason": step.skipReason.map { .string($0) } ?? .null,
                ])
            })),
        ]
    }
}
