import Orchestration

/// The lock that keeps one live `agents run` per state folder: `flock` on `<state>/agents.lock`
/// (released by the kernel when the engine dies, so a crashed session can be resumed at once).
/// The holder writes its identity into the file, so a second `agents run` names its pid.
final class SessionLock {
    static let fileName = "agents.lock"
    private let lock: FileLock

    /// Takes the lock.
    /// - Throws: ``OrchestratorError`` (`sessionHeld`, exit 75) when a live engine holds it.
    init(stateDirectory: StateDirectory) throws {
        let lock: FileLock
        do { lock = try FileLock(path: stateDirectory.path + "/" + Self.fileName) } catch {
            throw OrchestratorError(store: error)
        }
        do {
            try lock.lock(timeout: .seconds(2))
        } catch {
            let who = EngineIdentity.liveHolder(of: lock.path).map { " (engine pid \($0.pid))" } ?? ""
            throw OrchestratorError(.sessionHeld,
                "another 'agents run'\(who) is working in \(stateDirectory.path) (it holds \(Self.fileName)); "
                    + "wait for it, stop it, or use another --state-dir")
        }
        EngineIdentity.current.write(to: lock.path)
        self.lock = lock
    }

    /// Releases the lock.
    func release() {
        if lock.isLocked { lock.unlock() }
    }

    /// Whether a live engine holds the lock of a state folder.
    static func isHeld(stateDirectory: StateDirectory) -> Bool {
        guard let probe = try? FileLock(path: stateDirectory.path + "/" + fileName) else { return false }
        guard let acquired = try? probe.tryLock() else { return false }
        if acquired { probe.unlock() }
        return !acquired
    }
}
