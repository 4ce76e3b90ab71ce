import Orchestration

/// An error that knows the ``EngineError`` the CLI reports for it (``AgentsErrorMapping`` asks).
protocol EngineErrorConvertible {
    /// The engine error (message and exit code).
    var engineError: EngineError { get }
}

extension CodedError: EngineErrorConvertible {}
