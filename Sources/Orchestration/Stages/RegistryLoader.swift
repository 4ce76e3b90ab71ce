import Foundation
import Orchestration

/// Loads the component registry strictly, like plans (SPEC §1, §6): any problem is one located
/// sentence, `FILE:LINE:COLUMN: PATH: message` (exit 2), with a "did you mean" for likely typos.
///
/// ```json
/// {
///   "components": [
///     { "name": "plans-json", "type": "validator", "lifecycle": "stable", "tags": ["pre-commit"],
///       "command": "python3", "args": ["-m", "json.tool", "plans/hello.json"],
///       "idempotent": true, "timeout_sec": 30, "depends_on": [] }
///   ],
///   "stages": { "pre-commit": { "filter": "type=validator,tags=pre-commit", "mode": "sync" } },
///   "hooks": { "pre": [ { "name": "banner", "command": "echo", "args": ["checking"] } ], "post": [] },
///   "gates": { "ci": { "require_passed": ["pre-commit"] } },
///   "breaker": { "failure_threshold": 3, "cooldown_sec": 60 }
/// }
/// ```
///
/// Component fields are those of a plan step (SPEC §1) with the registry's own: `type`,
/// `lifecycle` (default `stable`), `idempotent` (default false: never retried; idempotent ones get
/// `retries`, default 2, with exponential backoff from `retry_delay_sec`, default 1, capped at
/// `max_retry_delay_sec`, default 60), and `breaker` (an object overriding the registry's
/// `breaker` key by key, the keys it leaves out coming from the registry's, or `false`). Names are step ids. Dependencies must name components and form no cycle.
public enum RegistryLoader {
    /// The registry file looked for in the working folder.
    public static let defaultFileName = "omnibase.registry.json"
    /// The largest registry file.
    public static let maxFileBytes = 4 * 1024 * 1024

    static let topKeys = ["version", "description", "components", "stages", "hooks", "gates", "breaker"]
    static let componentKeys = ["name", "description", "type", "lifecycle", "tags", "command", "args", "idempotent",
                                "timeout_sec", "depends_on", "retries", "retry_delay_sec", "max_retry_delay_sec",
                                "critical", "on_failure", "cwd", "env", "breaker"]
    static let stageKeys = ["filter", "tags", "lifecycle", "mode", "max_concurrency"]
    static let hookKeys = ["name", "command", "args", "timeout_sec", "cwd", "env", "stages"]
    static let breakerKeys = ["failure_threshold", "cooldown_sec"]
    /// Breaker settings when the `breaker` section leaves a field out.
    public static let defaultBreaker = BreakerSettings(failureThreshold: 3, cooldownSeconds: 60)

    /// Reads and validates the registry at `path`.
    /// - Throws: ``EngineError`` exit 2: unreadable file, invalid JSON, or an invalid registry.
    public static func load(path: String) throws(EngineError) -> LoadedRegistry {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            let hint = errno == ENOENT ? " (create one with 'orch --stage registry add', or pass --registry FILE)" : ""
            throw EngineError(.invalidPlan, "\(path): cannot read the registry: \(reason)\(hint)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw EngineError(.invalidPlan, "\(path): the registry is not a regular file")
        }
        guard Int(info.st_size) <= maxFileBytes else {
            throw EngineError(.invalidPlan, "\(path): the registry is larger than 4 MiB (\(info.st_size) bytes)")
        }
        let bytes: [UInt8]
        do { bytes = try FileContents.read(path: path) } catch {
            throw EngineError(.invalidPlan, "\(path): cannot read the registry: \(error)")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path
        return try load(bytes: bytes, displayPath: path, directory: directory)
    }

    /// Validates a registry given as bytes (a file's content, or an edited document).
    /// - Parameters:
    ///   - displayPath: the file name for messages.
    ///   - directory: the absolute folder relative `cwd`s resolve against.
    /// - Throws: ``EngineError`` exit 2, located.
    public static func load(bytes: [UInt8], displayPath: String, directory: String) throws(EngineError) -> LoadedRegistry {
        let root: JSONNode
        do {
            root = try StrictJSONParser.parse(bytes, limits: .init(maxBytes: maxFileBytes, maxDepth: 32))
        } catch {
            let at = error.path.isEmpty ? "" : " (at \(error.path))"
            throw EngineError(.invalidPlan, "\(displayPath):\(error.location.line):\(error.location.column): invalid JSON: \(error.message)\(at)")
        }
        let decoder = RegistryDecoder(file: displayPath)
        let registry = try decoder.decode(root)
        return LoadedRegistry(registry: registry, displayPath: displayPath, directory: directory, bytes: bytes,
                              document: root.toValue())
    }

    /// Validates one component on its own (`registry add`), located in `displayPath`.
    /// - Throws: ``EngineError`` exit 2, located; references to other components are not checked.
    public static func component(_ node: JSONNode, displayPath: String) throws(EngineError) -> Component {
        try RegistryDecoder(file: displayPath).decodeComponent(node, path: "component").0
    }
}

/// Turns a parsed registry into a ``Registry``, checking every key, type, range and reference.
private struct RegistryDecoder {
    let file: String

    func error(_ location: SourceLocation, _ path: String, _ message: String) -> EngineError {
        LocatedFields.error(file: file, location, path, message)
    }

    func fields(_ node: JSONNode, _ path: String, _ allowed: [String], what: String) throws(EngineError) -> LocatedFields {
        try LocatedFields(node, path: path, allowed: allowed, file: file, what: what)
    }

    func decode(_ root: JSONNode) throws(EngineError) -> Registry {
        let top = try fields(root, "", RegistryLoader.topKeys, what: "a registry")
        _ = try top.string("version")
        _ = try top.string("description")
        guard let componentNodes = try top.array("components") else {
            throw error(root.location, "", "missing required field \"components\" (an array, possibly empty)")
        }
        // The registry's breaker first: a component's own `breaker` overrides it key by key.
        var breaker: BreakerSettings?
        if let node = top["breaker"] {
            breaker = try decodeBreaker(node, path: "breaker", defaults: RegistryLoader.defaultBreaker)
        }
        var components: [Component] = []
        var firstIndex: [String: Int] = [:]
        var dependencyLocations: [[SourceLocation]] = []
        for (index, node) in componentNodes.enumerated() {
            let path = "components[\(index)]"
            let (component, locations) = try decodeComponent(node, path: path, breakerDefaults: breaker ?? RegistryLoader.defaultBreaker)
            if let first = firstIndex[component.name] {
                let fields = try self.fields(node, path, RegistryLoader.componentKeys, what: path)
                throw fields.fail("name", "duplicate component name \"\(component.name)\" (first used by components[\(first)])")
            }
            firstIndex[component.name] = index
            components.append(component)
            dependencyLocations.append(locations)
        }
        // References and cycles, reusing the plan graph's validation.
        do {
            _ = try PlanGraph(ids: components.map(\.name), dependsOn: components.map(\.dependsOn))
        } catch {
            throw graphError(error.issue, components: components, nodes: componentNodes, dependencyLocations: dependencyLocations)
        }

        var stages: [Stage: Registry.StageSettings] = [:]
        if let node = top["stages"] {
            guard case .object(let object) = node.kind else {
                throw top.fail("stages", "must be an object keyed by stage name, not \(node.typeName)")
            }
            for member in object.members {
                let stage = try stageName(member.key, location: member.keyLocation, path: "stages.\(member.key)")
                stages[stage] = try decodeStageSettings(member.value, stage: stage, path: "stages.\(member.key)")
            }
        }

        var preHooks: [Registry.Hook] = []
        var postHooks: [Registry.Hook] = []
        if let node = top["hooks"] {
            let hooks = try fields(node, "hooks", ["pre", "post"], what: "hooks")
            for (phase, nodes) in [("pre", try hooks.array("pre") ?? []), ("post", try hooks.array("post") ?? [])] {
                var names = Set<String>()
                for (index, hookNode) in nodes.enumerated() {
                    let path = "hooks.\(phase)[\(index)]"
                    let hook = try decodeHook(hookNode, path: path)
                    guard names.insert(hook.name).inserted else {
                        throw error(hookNode.location, path, "duplicate \(phase) hook name \"\(hook.name)\"")
                    }
                    if phase == "pre" { preHooks.append(hook) } else { postHooks.append(hook) }
                }
            }
        }

        var gates: [Stage: Registry.Gate] = [:]
        if let node = top["gates"] {
            guard case .object(let object) = node.kind else {
                throw top.fail("gates", "must be an object keyed by stage name, not \(node.typeName)")
            }
            var gateLocations: [Stage: SourceLocation] = [:]
            for member in object.members {
                let path = "gates.\(member.key)"
                let stage = try stageName(member.key, location: member.keyLocation, path: path)
                let gate = try fields(member.value, path, ["require_passed"], what: path)
                guard let required = try gate.strings("require_passed"), !required.isEmpty else {
                    throw gate.fail("require_passed", "a gate needs \"require_passed\": a non-empty array of stage names")
                }
                var stagesRequired: [Stage] = []
                for (index, (name, location)) in required.enumerated() {
                    let itemPath = "\(path).require_passed[\(index)]"
                    let needed = try stageName(name, location: location, path: itemPath)
                    guard needed != stage else { throw error(location, itemPath, "stage \(stage) cannot require itself") }
                    guard !stagesRequired.contains(needed) else {
                        throw error(location, itemPath, "the gate of stage \(stage) lists stage \(needed) twice")
                    }
                    stagesRequired.append(needed)
                }
                gates[stage] = Registry.Gate(requirePassed: stagesRequired)
                gateLocations[stage] = member.keyLocation
            }
            try refuseGateCycles(gates, locations: gateLocations)
        }

        return Registry(components: components, stages: stages, preHooks: preHooks, postHooks: postHooks,
                        gates: gates, breaker: breaker)
    }

    /// One component; `breakerDefaults` fills the keys its own `breaker` object leaves out (the
    /// registry's `breaker`, else the built-in settings).
    func decodeComponent(_ node: JSONNode, path: String,
                         breakerDefaults: BreakerSettings = RegistryLoader.defaultBreaker) throws(EngineError) -> (Component, [SourceLocation]) {
        let fields = try self.fields(node, path, RegistryLoader.componentKeys, what: path)
        let name = try fields.string("name", required: true)!
        guard Self.isValidName(name) else {
            throw fields.fail("name", "component name \"\(name)\" must start with a letter or digit and contain only letters, digits, _ . -")
        }
        let kind = try fields.enumeration("type", Component.Kind.self, required: true)!
        let lifecycle = try fields.enumeration("lifecycle", Component.Lifecycle.self) ?? .stable
        let command = try fields.string("command", required: true, nonEmpty: true)!
        let arguments = try fields.strings("args")?.map(\.0) ?? []
        let tags = try fields.strings("tags") ?? []
        for (index, (tag, location)) in tags.enumerated() where tag.isEmpty || tag.contains(",") || tag.contains("|") {
            throw error(location, "\(path).tags[\(index)]", "a tag must be non-empty and contain no \",\" or \"|\"")
        }
        for (index, (tag, location)) in tags.enumerated() where tags[..<index].contains(where: { $0.0 == tag }) {
            throw error(location, "\(path).tags[\(index)]", "component \"\(name)\" lists the tag \"\(tag)\" twice")
        }
        let idempotent = try fields.bool("idempotent") ?? false
        let retries = try fields.int("retries", minimum: 0, maximum: 100)
        if !idempotent, let retries, retries > 0 {
            throw fields.fail("retries", "component \"\(name)\" is not idempotent, so it is never retried; "
                              + "set \"idempotent\": true or remove \"retries\"")
        }
        let dependencies = try fields.strings("depends_on") ?? []
        var breaker = Component.BreakerSetting.inherited
        if let node = fields["breaker"] {
            if case .bool(false) = node.kind {
                breaker = .disabled
            } else if case .object = node.kind {
                breaker = .custom(try decodeBreaker(node, path: "\(path).breaker", defaults: breakerDefaults))
            } else {
                throw fields.fail("breaker", "must be an object of breaker settings or false, not \(node.kind.isTrue ? "true" : node.typeName)")
            }
        }
        let component = Component(
            name: name, description: try fields.string("description"), kind: kind, lifecycle: lifecycle,
            tags: tags.map(\.0), command: command, arguments: arguments, idempotent: idempotent,
            timeoutSeconds: try fields.secondsValue("timeout_sec", positive: true), dependsOn: dependencies.map(\.0),
            retries: retries, retryDelaySeconds: try fields.secondsValue("retry_delay_sec", positive: false) ?? 1,
            maxRetryDelaySeconds: try fields.secondsValue("max_retry_delay_sec", positive: false) ?? 60,
            critical: try fields.bool("critical") ?? true,
            onFailure: try fields.enumeration("on_failure", FailurePolicy.self) ?? .abort,
            workingDirectory: try fields.string("cwd", nonEmpty: true), environment: try environment(fields, path: path),
            breaker: breaker)
        return (component, dependencies.map(\.1))
    }

    func decodeStageSettings(_ node: JSONNode, stage: Stage, path: String) throws(EngineError) -> Registry.StageSettings {
        let fields = try self.fields(node, path, RegistryLoader.stageKeys, what: path)
        if stage == .pipeline {
            for key in ["filter", "tags", "lifecycle"] where fields[key] != nil {
                throw fields.fail(key, "the pipeline stage runs the components named with --from/--to; only \"mode\" and \"max_concurrency\" apply")
            }
        }
        var settings = Registry.StageSettings()
        if let text = try fields.string("filter") {
            do { settings.filter = try ComponentFilter(parsing: text) } catch { throw fields.fail("filter", error.message) }
        }
        settings.tags = try fields.strings("tags")?.map(\.0)
        if let items = try fields.strings("lifecycle") {
            var phases: [Component.Lifecycle] = []
            for (index, (raw, location)) in items.enumerated() {
                guard let phase = Component.Lifecycle(rawValue: raw) else {
                    throw error(location, "\(path).lifecycle[\(index)]", LocatedFields.unknownValue(raw, Component.Lifecycle.self))
                }
                phases.append(phase)
            }
            guard !phases.isEmpty else { throw fields.fail("lifecycle", "must name at least one lifecycle phase") }
            settings.lifecycle = phases
        }
        if let raw = try fields.string("mode") {
            guard raw == StageMode.sync.rawValue || raw == StageMode.async.rawValue else {
                let hint = Suggestion.closest(to: raw, among: ["sync", "async"]).map { " (did you mean \"\($0)\"?)" } ?? ""
                throw fields.fail("mode", "unknown value \"\(raw)\"\(hint); a stage's default mode is \"sync\" or \"async\"")
            }
            settings.mode = StageMode(rawValue: raw)
        }
        settings.maxConcurrency = try fields.int("max_concurrency", minimum: 1, maximum: 100_000)
        return settings
    }

    func decodeHook(_ node: JSONNode, path: String) throws(EngineError) -> Registry.Hook {
        let fields = try self.fields(node, path, RegistryLoader.hookKeys, what: path)
        let name = try fields.string("name", required: true)!
        guard Self.isValidName(name) else {
            throw fields.fail("name", "hook name \"\(name)\" must start with a letter or digit and contain only letters, digits, _ . -")
        }
        var stages: [Stage]?
        if let items = try fields.strings("stages") {
            var list: [Stage] = []
            for (index, (raw, location)) in items.enumerated() {
                let stage = try stageName(raw, location: location, path: "\(path).stages[\(index)]")
                list.append(stage)
            }
            stages = list
        }
        return Registry.Hook(name: name, command: try fields.string("command", required: true, nonEmpty: true)!,
                             arguments: try fields.strings("args")?.map(\.0) ?? [],
                             timeoutSeconds: try fields.secondsValue("timeout_sec", positive: true),
                             workingDirectory: try fields.string("cwd", nonEmpty: true),
                             environment: try environment(fields, path: path), stages: stages)
    }

    /// The `env` of a component or hook: strings under names a process can receive. An empty
    /// name, or one holding `=`, is refused here, located in the registry, as a plan refuses it:
    /// let through, it failed every stage with a location in the generated plan, or a hook at
    /// run time.
    func environment(_ fields: LocatedFields, path: String) throws(EngineError) -> [String: String] {
        let entries = try fields.stringMembers("env")
        if case .object(let object)? = fields["env"]?.kind {
            for member in object.members where member.key.isEmpty || member.key.utf8.contains(UInt8(ascii: "=")) {
                let shown = member.key.isEmpty ? "an empty name" : "\"\(member.key)\" (it holds \"=\")"
                throw error(member.keyLocation, "\(path).env", "\(shown) is not a valid environment variable name")
            }
        }
        var environment: [String: String] = [:]
        for (name, value, _) in entries { environment[name] = value }
        return environment
    }

    func decodeBreaker(_ node: JSONNode, path: String, defaults: BreakerSettings) throws(EngineError) -> BreakerSettings {
        let fields = try self.fields(node, path, RegistryLoader.breakerKeys, what: path)
        return BreakerSettings(
            failureThreshold: try fields.int("failure_threshold", minimum: 1, maximum: 1_000_000) ?? defaults.failureThreshold,
            cooldownSeconds: try fields.secondsValue("cooldown_sec", positive: true) ?? defaults.cooldownSeconds)
    }

    /// Gates that require each other in a circle (`ci` requires `test`, which requires `ci`) can
    /// never be met: none of those stages could ever run.
    func refuseGateCycles(_ gates: [Stage: Registry.Gate], locations: [Stage: SourceLocation]) throws(EngineError) {
        let stages = Stage.executing
        do {
            _ = try PlanGraph(ids: stages.map(\.rawValue),
                              dependsOn: stages.map { gates[$0]?.requirePassed.map(\.rawValue) ?? [] })
        } catch {
            guard case .cycle(let path) = error.issue, let first = path.first,
                  let location = locations[stages[first]] else { return }
            throw self.error(location, "gates.\(stages[first])", "gate cycle: "
                             + path.map { stages[$0].rawValue }.joined(separator: " -> ")
                             + " (each requires the next to have passed first, so none of them could ever run)")
        }
    }

    /// A stage name that components run in (not `registry`).
    func stageName(_ raw: String, location: SourceLocation, path: String) throws(EngineError) -> Stage {
        guard let stage = Stage(rawValue: raw), stage != .registry else {
            let names = Stage.executing.map(\.rawValue)
            let hint = Suggestion.closest(to: raw, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw error(location, path, "unknown stage \"\(raw)\"\(hint); expected one of \(names.joined(separator: ", "))")
        }
        return stage
    }

    func graphError(_ issue: PlanGraph.Issue, components: [Component], nodes: [JSONNode],
                    dependencyLocations: [[SourceLocation]]) -> EngineError {
        let names = components.map(\.name)
        switch issue {
        case .duplicateID(let index, let first):
            return error(nodes[index].location, "components[\(index)]", "duplicate component name \"\(names[index])\" (first used by components[\(first)])")
        case .unknownDependency(let step, let position, let name):
            let hint = Suggestion.closest(to: name, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
            return error(dependencyLocations[step][position], "components[\(step)].depends_on[\(position)]",
                         "component \"\(names[step])\" depends on unknown component \"\(name)\"\(hint)")
        case .selfDependency(let step, let position):
            return error(dependencyLocations[step][position], "components[\(step)].depends_on[\(position)]",
                         "component \"\(names[step])\" depends on itself")
        case .repeatedDependency(let step, let position):
            return error(dependencyLocations[step][position], "components[\(step)].depends_on[\(position)]",
                         "component \"\(names[step])\" lists the same dependency twice")
        case .cycle(let path):
            let first = path.first ?? 0
            return error(nodes[first].location, "components[\(first)]",
                         "dependency cycle: " + path.map { names[$0] }.joined(separator: " -> ") + " (each depends on the next)")
        }
    }

    static func isValidName(_ name: String) -> Bool {
        func alnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        guard let first = name.utf8.first, alnum(first) else { return false }
        return name.utf8.allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }
}

extension JSONNode.Kind {
    /// Whether this is the literal `true`.
    fileprivate var isTrue: Bool {
        if case .bool(true) = self { true } else { false }
    }
}
