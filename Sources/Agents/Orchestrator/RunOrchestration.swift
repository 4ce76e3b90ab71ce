/// Runs a project from start to end (seed 003's `run_orchestration`): creates an
/// ``Orchestrator``, runs the session and returns its final status.
///
/// - Parameters:
///   - planDirectory: The project folder (holding `plan.json`).
///   - repositoryDirectory: The git repository; default: the current folder.
///   - configure: Adjusts the configuration (sandbox, auto-merge, state folder, ...).
/// - Returns: The final status.
/// - Throws: As ``Orchestrator/run()``.
public func runOrchestration(planDirectory: String, repositoryDirectory: String? = nil,
                             configure: (inout OrchestratorConfig) -> Void = { _ in }) async throws -> ProjectStatus {
    var config = repositoryDirectory.map { OrchestratorConfig(repositoryDirectory: $0, planDirectory: planDirectory) }
        ?? OrchestratorConfig(planDirectory: planDirectory)
    configure(&config)
    return try await Orchestrator(config: config).run()
}
