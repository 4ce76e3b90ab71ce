/// The omnibase-agents engine: plans, the DAG scheduler, process control and durable state.
public enum Orchestration {
    /// The engine's version, printed by `omnibase-agents --version`.
    public static let version = "0.1.0"
}
