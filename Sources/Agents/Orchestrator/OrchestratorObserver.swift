/// Receives a session's progress (the CLI's progress printer, tests).
///
/// Observers are called in order from the part of the engine where the change happened; they
/// should return quickly.
public protocol OrchestratorObserver: Sendable {
    /// Records one change.
    func observe(_ progress: AgentProgress) async
}
