/// The observers of a session, called one after the other.
struct ObserverSet: Sendable {
    let observers: [any OrchestratorObserver]

    func emit(_ progress: AgentProgress) async {
        for observer in observers { await observer.observe(progress) }
    }
}
