import Foundation
import Orchestration

/// What `orch --stage registry` does.
public enum RegistryAction: Sendable {
    /// Lists the components with their breaker states.
    case list
    /// Shows one component: its entry, the stages that select it, its dependents, its breaker.
    case inspect(String)
    /// Adds a component, given as its JSON object text and where that text came from (for
    /// located errors: `--json`, or the options it was built from).
    case add(json: String, source: String)
    /// Removes a component nothing depends on.
    case remove(String)
    /// Closes a component's circuit breaker (forgets its failures).
    case reset(String)
}

/// Administers the registry file (seed 000: "add, remove, inspect"): edits are validated and
/// atomic (``RegistryFile``), names that are not in the registry exit 3.
public struct RegistryOrchestrator: Orchestrator {
    /// `registry`.
    public let stage = Stage.registry
    /// Creates the orchestrator.
    public init() {}

    /// Performs the context's ``ExecutionContext/registryAction``.
    /// - Throws: ``EngineError``: exit 3 for an unknown component, 2 for an invalid registry or
    ///   component, 74 when the file cannot be written.
    public func run(_ context: ExecutionContext) async throws(EngineError) -> StageReport {
        guard let action = context.registryAction else {
            throw EngineError(.usage, "the registry stage needs an action: list, inspect NAME, add, remove NAME or reset NAME")
        }
        let (json, human) = try perform(action, context: context)
        return StageReport(stage: .registry, mode: .sync, outcome: .administered(json, human: human), exitCode: 0)
    }

    /// The action's JSON and its human lines (unescaped, unfitted: ``StageReport/Outcome/administered(_:human:)``).
    private func perform(_ action: RegistryAction, context: ExecutionContext) throws(EngineError) -> (JSONValue, [String]) {
        let path = context.registryPath
        switch action {
        case .list:
            let loaded = try loadRegistry(context)
            let breakers = try readBreakers(context)
            let now = context.now()
            var items: [JSONValue] = []
            var lines: [String] = []
            let width = min(max(4, loaded.registry.components.map(\.name.count).max() ?? 4), 32)
            for component in loaded.registry.components {
                let settings = loaded.registry.breakerSettings(for: component)
                let state = settings.map { (breakers[component.name] ?? CircuitBreaker()).state(at: now, settings: $0).name } ?? "disabled"
                items.append(.object([
                    "name": .string(component.name),
                    "description": component.description.map { .string($0) } ?? .null,
                    "type": .string(component.kind.rawValue),
                    "lifecycle": .string(component.lifecycle.rawValue),
                    "tags": .array(component.tags.map { .string($0) }),
                    "argv": .array(component.argv.map { .string($0) }),
                    "idempotent": .bool(component.idempotent),
                    "depends_on": .array(component.dependsOn.map { .string($0) }),
                    "breaker": .string(state),
                ]))
                lines.append("\(pad(truncate(component.name, to: width), width))  \(pad(component.kind.rawValue, 9))  "
                             + "\(pad(component.lifecycle.rawValue, 12))  \(pad(state, 9))  "
                             + component.tags.joined(separator: ","))
                if let description = component.description, !description.isEmpty { lines.append("  " + description) }
            }
            let header = "\(loaded.displayPath): \(counted(loaded.registry.components.count, "component"))"
            return (.object(["registry": .string(loaded.displayPath), "components": .array(items)]), [header] + lines)

        case .inspect(let name):
            let loaded = try loadRegistry(context)
            let registry = loaded.registry
            guard let component = registry.component(named: name) else { throw registry.unknownComponent(name, context: "inspect") }
            let entry = loaded.document["components"]?.arrayValue?.first { $0["name"]?.stringValue == name } ?? .null
            var stages: [String] = []
            for stage in [Stage.preCommit, .ci, .test] {
                if let selection = try? StageSelection.select(stage: stage, registry: registry, request: SelectionRequest()),
                   selection.entry(named: name) != nil {
                    stages.append(stage.rawValue)
                }
            }
            let dependents = registry.dependents(of: name)
            let settings = registry.breakerSettings(for: component)
            let breaker = (try readBreakers(context))[name] ?? CircuitBreaker()
            let now = context.now()
            let breakerJSON = breaker.json(at: now, settings: settings)
            let json: JSONValue = .object([
                "name": .string(name),
                "component": entry,
                "retries": .int(component.idempotent ? component.retries : 0),
                "stages": .array(stages.map { .string($0) }),
                "dependents": .array(dependents.map { .string($0) }),
                "breaker": breakerJSON,
            ])
            var lines = ["\(name): \(component.kind.rawValue), \(component.lifecycle.rawValue)"
                         + (component.description.map { ": \($0)" } ?? "")]
            lines.append("  argv: " + component.argv.map(ShellQuoting.quote).joined(separator: " "))
            lines.append("  tags: \(component.tags.isEmpty ? "-" : component.tags.joined(separator: ", "))")
            let retried = component.retries == 0 ? "not retried" : "\(component.retries) retries with exponential backoff"
            lines.append("  idempotent: \(component.idempotent ? "yes, \(retried)" : "no, never retried")")
            lines.append("  timeout: \(component.timeoutSeconds.map { formatDuration($0) } ?? "none")")
            lines.append("  depends on: \(component.dependsOn.isEmpty ? "-" : component.dependsOn.joined(separator: ", "))")
            lines.append("  needed by: \(dependents.isEmpty ? "-" : dependents.joined(separator: ", "))")
            lines.append("  stages (defaults): \(stages.isEmpty ? "-" : stages.joined(separator: ", "))")
            if let settings {
                let state = breaker.state(at: now, settings: settings)
                let why = breaker.reason(state, at: now, settings: settings).map { ": \($0)" } ?? ""
                lines.append("  breaker: \(state.name), \(breaker.consecutiveFailures)/\(settings.failureThreshold) failures\(why)")
            } else {
                lines.append("  breaker: disabled")
            }
            return (json, lines)

        case .add(let text, let source):
            let node: JSONNode
            do { node = try StrictJSONParser.parse(text) } catch {
                throw EngineError(.usage, "\(source):\(error.location.line):\(error.location.column): invalid JSON: \(error.message)")
            }
            let component = try RegistryLoader.component(node, displayPath: source)
            // Checked before the registry is read, with the file's sentences: an unknown component
            // (exit 3) is a different mistake.
            for (index, dependency) in component.dependsOn.enumerated() {
                guard dependency != component.name else {
                    throw EngineError(.usage, "\(source): component \"\(component.name)\" depends on itself")
                }
                guard !component.dependsOn[..<index].contains(dependency) else {
                    throw EngineError(.usage, "\(source): component \"\(component.name)\" lists the same dependency twice")
                }
            }
            let updated = try RegistryFile.edit(path: path) { current throws(EngineError) -> JSONValue in
                var document = current?.document ?? .object(["components": .array([])])
                if let registry = current?.registry {
                    if registry.component(named: component.name) != nil {
                        throw EngineError(.usage, "component \"\(component.name)\" is already in \(path); remove it first to replace it")
                    }
                    for dependency in component.dependsOn where registry.component(named: dependency) == nil {
                        throw registry.unknownComponent(dependency, context: "\(component.name).depends_on")
                    }
                } else if let dependency = component.dependsOn.first {
                    throw Registry(components: []).unknownComponent(dependency, context: "\(component.name).depends_on")
                }
                try Self.mutateComponents(&document, path: path) { $0.append(node.toValue()) }
                return document
            }
            return (.object(["registry": .string(path), "added": .string(component.name),
                             "components": .int(updated.registry.components.count)]),
                    ["added \(component.name) to \(path) (\(counted(updated.registry.components.count, "component")))"])

        case .remove(let name):
            let updated = try RegistryFile.edit(path: path) { current throws(EngineError) -> JSONValue in
                guard let current else { throw EngineError(.invalidPlan, "\(path): no registry to remove \"\(name)\" from") }
                guard current.registry.component(named: name) != nil else {
                    throw current.registry.unknownComponent(name, context: "remove")
                }
                let dependents = current.registry.dependents(of: name)
                guard dependents.isEmpty else {
                    throw EngineError(.usage, "cannot remove \"\(name)\": \(dependents.map { "\"\($0)\"" }.joined(separator: ", ")) "
                                      + "depend\(dependents.count == 1 ? "s" : "") on it; remove or change them first")
                }
                var document = current.document
                try Self.mutateComponents(&document, path: path) { $0.removeAll { $0["name"]?.stringValue == name } }
                return document
            }
            return (.object(["registry": .string(path), "removed": .string(name),
                             "components": .int(updated.registry.components.count)]),
                    ["removed \(name) from \(path) (\(counted(updated.registry.components.count, "component")))"])

        case .reset(let name):
            let loaded = try loadRegistry(context)
            // Read without creating a state folder: with nothing recorded there is nothing to write.
            let recorded = try readBreakers(context)
            guard loaded.registry.component(named: name) != nil || recorded[name] != nil else {
                throw loaded.registry.unknownComponent(name, context: "reset")
            }
            guard recorded[name] != nil else {
                return (.object(["reset": .string(name), "breaker": "closed", "changed": false]),
                        ["nothing to reset: \(name) has no circuit-breaker record (its circuit is closed)"])
            }
            let directory: StateDirectory
            do { directory = try StateDirectory(path: context.stateDirectory) } catch { throw EngineError(error) }
            let removed = try BreakerStore(stateDirectory: directory).update { breakers in breakers.removeValue(forKey: name) != nil }
            guard removed else {
                return (.object(["reset": .string(name), "breaker": "closed", "changed": false]),
                        ["nothing to reset: \(name) has no circuit-breaker record (its circuit is closed)"])
            }
            return (.object(["reset": .string(name), "breaker": "closed", "changed": true]), ["closed the circuit breaker of \(name)"])
        }
    }

    private func loadRegistry(_ context: ExecutionContext) throws(EngineError) -> LoadedRegistry {
        if let registry = context.registry { return registry }
        return try RegistryLoader.load(path: context.registryPath)
    }

    /// The breakers, without creating a state folder that does not exist.
    private func readBreakers(_ context: ExecutionContext) throws(EngineError) -> [String: CircuitBreaker] {
        guard FileManager.default.fileExists(atPath: context.stateDirectory) else { return [:] }
        let directory: StateDirectory
        do { directory = try StateDirectory(path: context.stateDirectory) } catch { throw EngineError(error) }
        return try BreakerStore(stateDirectory: directory).load()
    }

    /// Applies `change` to the document's `components` array.
    private static func mutateComponents(_ document: inout JSONValue, path: String,
                                         _ change: (inout [JSONValue]) -> Void) throws(EngineError) {
        guard case .object(var members) = document,
              let index = members.firstIndex(where: { $0.key == "components" }),
              case .array(var components) = members[index].value else {
            throw EngineError(.invalidPlan, "\(path): the registry has no \"components\" array")
        }
        change(&components)
        members[index].value = .array(components)
        document = .object(members)
    }
}
