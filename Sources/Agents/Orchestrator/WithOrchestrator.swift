/// Runs an orchestrator's session while `body` acts on it, and returns once both are over.
///
/// The session runs in a child task of the caller's; `body` starts once it runs (with every
/// task it may start already scheduled) and may spawn agents, read the status, wait for
/// completion or stop it. When `body` returns or throws, a session still running is stopped
/// gracefully (tasks stay resumable) and awaited.
///
/// ```swift
/// let delivery = try await withOrchestrator(config: config) { orchestrator in
///     _ = try await orchestrator.spawnAgent(role: "dev", task: "T1")
///     _ = await orchestrator.waitForCompletion()
///     return try await orchestrator.milestonePR("M1")
/// }
/// ```
///
/// - Parameters:
///   - config: How to run.
///   - observers: Progress observers.
///   - isolation: The caller's actor, which `body` runs on.
///   - body: What to do while the session runs.
/// - Returns: What `body` returns.
/// - Throws: What prevented the session from starting (as ``Orchestrator/run()``; `body` does
///   not run then), what `body` throws, or a failure of the state folder while it ran.
public func withOrchestrator<Result>(config: OrchestratorConfig, observers: [any OrchestratorObserver] = [],
                                     isolation: isolated (any Actor)? = #isolation,
                                     _ body: (Orchestrator) async throws -> Result) async throws -> Result {
    let orchestrator = Orchestrator(config: config, observers: observers)
    return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
        group.addTask { _ = try await orchestrator.run() }
        guard await orchestrator.waitUntilStarted() else {
            // The session did not start: its error ends this call.
            try await group.waitForAll()
            throw CancellationError()
        }
        let result: Result
        do {
            result = try await body(orchestrator)
        } catch {
            await orchestrator.stop()
            _ = try? await group.waitForAll()
            throw error
        }
        await orchestrator.stop()
        try await group.waitForAll()
        return result
    }
}
