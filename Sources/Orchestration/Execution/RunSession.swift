import Foundation

/// Runs a loaded plan with everything a CLI run has: a run folder in the state folder, attempt
/// logs, the `events.jsonl` log, the plan snapshot and the final `report.json`.
///
/// Layout under the state folder:
///
/// | path | content |
/// | --- | --- |
/// | `runs/<id>/plan.json` | the plan file's bytes as they were when the run started |
/// | `runs/<id>/source.json` | the plan's path, folder and `--var` overrides |
/// | `runs/<id>/events.jsonl` | one event per line (SPEC §3) |
/// | `runs/<id>/logs/<step>.<attempt>.out` / `.err` | each attempt's output |
/// | `runs/<id>/report.json` | the final report |
public struct RunSession: Sendable {
    /// The state folder.
    public let stateDirectory: StateDirectory

    /// Opens the state folder (creating it 0700).
    public init(stateDirectory path: String) throws(EngineError) {
        do { stateDirectory = try StateDirectory(path: path) } catch { throw EngineError(error) }
    }

    /// Runs `loaded` to its end.
    /// - Parameters:
    ///   - options: the run's id, concurrency override, selection.
    ///   - observers: more observers (progress printers).
    ///   - stopRequests: signals.
    /// - Returns: the final report.
    /// - Throws: ``EngineError`` when the state folder fails.
    public func run(_ loaded: LoadedPlan, options: RunOptions, observers: [any RunObserver] = [],
                    stopRequests: AsyncStream<StopReason>? = nil) async throws(EngineError) -> RunReport {
        var options = options
        let runFolder = "runs/\(options.runID)"
        do {
            _ = try stateDirectory.runDirectory(options.runID)
            options.logDirectory = try stateDirectory.ensureSubdirectory("\(runFolder)/logs")
            try stateDirectory.writeFileAtomically("\(runFolder)/plan.json", loaded.source.bytes)
            try stateDirectory.writeFileAtomically("\(runFolder)/source.json", Array(Self.sourceJSON(loaded.source).serialized(pretty: true).utf8))
        } catch {
            throw EngineError(error)
        }
        let events = try EventLogWriter(stateDirectory: stateDirectory, runID: options.runID)
        let executor = DAGExecutor(plan: loaded.plan, graph: loaded.graph, options: options,
                                   observers: [events] + observers, clock: ContinuousClock())
        let report = try await executor.run(stopRequests: stopRequests)
        do {
            try stateDirectory.writeFileAtomically("\(runFolder)/report.json", Array(report.json.serialized(pretty: true).utf8))
        } catch {
            throw EngineError(error)
        }
        return report
    }

    static func sourceJSON(_ source: PlanSource) -> JSONValue {
        .object([
            "display_path": .string(source.displayPath),
            "directory": .string(source.directory),
            "overrides": .object(source.overrides.sorted { $0.key < $1.key }.map { JSONValue.Member($0.key, .string($0.value)) }),
        ])
    }
}
