import Orchestration

/// Maps any error of this module to the ``EngineError`` the CLI's exit funnel prints.
public enum AgentsErrorMapping {
    /// The engine error (message and SPEC §5 exit code) for `error`.
    ///
    /// - Parameter error: Any error thrown by the Agents module.
    /// - Returns: Plan errors exit 2, spawn and orchestrator errors their own codes, store
    ///   errors 74/4/5, anything else 74.
    public static func engineError(_ error: any Error) -> EngineError {
        if let error = error as? any EngineErrorConvertible { return error.engineError }
        return EngineError(error)
    }
}
