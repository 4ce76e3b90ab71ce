import Glibc

/// The process group a step runs in: its leader (spawned by the engine with pgid == pid) and every
/// descendant that did not leave the group.
///
/// - Important: Signal a group only while its leader is **not yet reaped**. The zombie leader keeps
///   the pid, and so the group id, from being reused; after reaping, `kill(-pgid, ...)` could hit an
///   unrelated group that got the same number.
struct ProcessGroup: Sendable {
    /// The group id (the leader's pid).
    let id: pid_t

    /// The group led by `leader`.
    ///
    /// - Important: `leader` must be greater than 1: `kill(-1, ...)` signals every process the
    ///   engine may signal, and `kill(0, ...)` the engine's own group.
    init(leader: pid_t) {
        precondition(leader > 1, "ProcessGroup: refusing to address process group \(leader)")
        id = leader
    }

    /// Sends `signal` to every member. Failures are ignored: `ESRCH` means nobody is left, and
    /// `EPERM` (a member that changed credentials) cannot be fixed here; the emptiness check counts it.
    func send(_ signal: Int32) {
        _ = kill(-id, signal)
    }

    /// The members that still run (zombies and dead processes are not counted).
    func liveMembers() -> [pid_t] {
        ProcessTable.entries().filter { $0.group == id && $0.isAlive }.map(\.pid)
    }

    /// Polls `/proc` until no member runs any more or `bound` passes.
    ///
    /// - Returns: How many members still run at the end (0 when the group is empty).
    func waitUntilEmpty(within bound: Duration, pollingEvery interval: Duration) async -> Int {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: bound)
        while true {
            let survivors = liveMembers().count
            if survivors == 0 || clock.now >= deadline { return survivors }
            try? await Task.sleep(for: interval, clock: clock)
        }
    }
}
