import Orchestration

/// Maps any error of this module to the ``EngineError`` the CLI's exit funnel prints.
public enum AgentsErrorMapping {
    /// The engine error (message and SPEC §5 exit code) for `error`.
    ///
    /// - Parameter error: Any error thrown by the Agents module.
    /// - Returns: Plan errors exit 2, spawn and orchestrator errors their own codes, store
    ///   errors 74/4/5, anything else 74.
    public static func engineError(_ error: any Error) -> EngineError {
        switch error {
        case let error as PlanParseError: return error.engineError
        case let error as PlanValidationError: return error.engineError
        case let error as OrchestratorError: return error.engineError
        case let error as AgentSpawnError: return error.engineError
        default: return EngineError(error)
        }
    }
}
