import Foundation
import Orchestration
import Presentation

extension CommonOptions {
    /// The progress printer of a run in human format (nil for json/yaml): a live block when stderr
    /// is a terminal that takes colour and cursor movement (not `TERM=dumb`, `CI=true`, `NO_COLOR`
    /// or `--no-color`), plain lines otherwise; the ETA comes from earlier runs' durations.
    func progressPrinter(for loaded: LoadedPlan, request: RunRequest, session: RunSession,
                         alreadyDone: Int = 0) -> ProgressPrinter? {
        progressPrinter(for: loaded, request: request, stateDirectory: session.stateDirectory, alreadyDone: alreadyDone)
    }

    /// ``progressPrinter(for:request:session:alreadyDone:)`` for a run in `stateDirectory` (a stage's).
    func progressPrinter(for loaded: LoadedPlan, request: RunRequest, stateDirectory: StateDirectory,
                         alreadyDone: Int = 0) -> ProgressPrinter? {
        guard format == .human else { return nil }
        let style = TextStyle.detect(fd: 2, noColor: noColor)
        var expected: [String: Double] = [:]
        if let store = try? RunStore(stateDirectory: stateDirectory, readOnly: true),
           let history = try? store.successfulDurations(planID: loaded.plan.id) {
            for (id, durations) in history where !durations.isEmpty {
                expected[id] = durations.sorted()[durations.count / 2]
            }
        }
        return ProgressPrinter(mode: style.rich ? .live : .lines, style: style, stepIDs: loaded.graph.ids,
                               expectedDurations: expected,
                               slots: request.maxConcurrency ?? loaded.plan.maxConcurrency, alreadyDone: alreadyDone,
                               failureTails: .init(stateDirectory: stateDirectory, mask: PrintMask.shared.current))
    }
}

/// Runs `body` while a live progress block is redrawn every quarter second; clears it at the end.
func withProgress<T: Sendable>(_ progress: ProgressPrinter?,
                               _ body: @escaping @Sendable () async throws(EngineError) -> T) async throws(EngineError) -> T {
    guard let progress else { return try await body() }
    defer { progress.clear() }
    return try await withTicks(progress.tick, body)
}

/// Runs `body` while `tick` is called every quarter second (a live display's redraw).
func withTicks<T: Sendable>(_ tick: @escaping @Sendable () -> Void,
                            _ body: @escaping @Sendable () async throws(EngineError) -> T) async throws(EngineError) -> T {
    let result: Result<T, EngineError> = await withTaskGroup(of: Result<T, EngineError>?.self) { group in
        group.addTask {
            do { return .success(try await body()) } catch { return .failure(EngineError(error)) }
        }
        group.addTask {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                tick()
            }
            return nil
        }
        var outcome: Result<T, EngineError> = .failure(EngineError(.stateFailure, "the run ended without a result"))
        while let next = await group.next() {
            if let next {
                outcome = next
                group.cancelAll()
            }
        }
        return outcome
    }
    return try result.get()
}

extension JSONValue {
    /// An object with one more member at the end.
    func adding(_ key: String, _ value: JSONValue) -> JSONValue {
        guard case .object(var members) = self else { return self }
        members.append(.init(key, value))
        return .object(members)
    }
}
