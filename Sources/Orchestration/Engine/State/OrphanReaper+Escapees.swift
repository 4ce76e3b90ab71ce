import Foundation

extension OrphanReaper {
    /// Which processes a teardown looks for: those whose environment holds every entry.
    ///
    /// Every step process gets `OMNIBASE_RUN_ID`, `OMNIBASE_STEP_ID` and `OMNIBASE_ATTEMPT`, and
    /// its descendants inherit them, including those that left the step's process group with
    /// `setsid` or `setpgid`.
    public struct Marks: Sendable, Hashable {
        /// `NAME=value` entries that must all be present.
        public var entries: [String]

        /// Every process of a run, whatever step or attempt started it.
        public static func run(_ runID: String) -> Marks {
            Marks(entries: ["OMNIBASE_RUN_ID=\(runID)"])
        }

        /// The processes of one attempt of one step of a run.
        public static func attempt(runID: String, stepID: String, attempt: Int) -> Marks {
            Marks(entries: ["OMNIBASE_RUN_ID=\(runID)", "OMNIBASE_STEP_ID=\(stepID)", "OMNIBASE_ATTEMPT=\(attempt)"])
        }
    }

    /// A live process that carries the marks, with its process group.
    public struct MarkedProcess: Sendable, Hashable {
        /// The process id.
        public var pid: Int32
        /// Its process group.
        public var group: Int32
    }

    /// The live processes (not zombies) whose environment holds every entry of `marks`, read from
    /// `/proc/<pid>/environ`; never the engine itself.
    ///
    /// - Important: A process that cleared or rewrote its environment is not found.
    public static func processes(marked marks: Marks) -> [MarkedProcess] {
        let needles = marks.entries.map { Array($0.utf8) }
        let ownPID = getpid()
        var found: [MarkedProcess] = []
        for entry in ProcessTable.entries() where entry.pid != ownPID && entry.isAlive {
            guard let environ = ProcessTable.environment(of: entry.pid) else { continue }
            var missing = Set(needles.indices)
            for variable in environ where !missing.isEmpty {
                if let index = needles.firstIndex(where: { $0.elementsEqual(variable) }) { missing.remove(index) }
            }
            if missing.isEmpty { found.append(MarkedProcess(pid: entry.pid, group: entry.group)) }
        }
        return found
    }

    /// Ends every live process that carries `marks`: SIGTERM and SIGCONT, up to `grace` for them
    /// to go, then SIGKILL, then a bounded wait until none is left.
    ///
    /// A marked process that leads its own process group (a `setsid` escapee) is signalled as a
    /// group, so its unmarked descendants go too; any other marked process is signalled alone,
    /// so a group that merely contains one (the engine's own, say) is never hit.
    ///
    /// - Important: Run it in an uncancelled context: it sleeps while the processes exit.
    /// - Returns: How many marked processes were found at first (0: nothing was signalled).
    @discardableResult
    public static func tearDown(marked marks: Marks, grace: Duration) async -> Int {
        let found = processes(marked: marks)
        guard !found.isEmpty else { return 0 }
        signal(found, SIGTERM)
        signal(found, SIGCONT)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: grace)
        var left = processes(marked: marks)
        while !left.isEmpty, clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            left = processes(marked: marks)
        }
        if !left.isEmpty {
            signal(left, SIGKILL)
            let killDeadline = clock.now.advanced(by: .seconds(2))
            while !processes(marked: marks).isEmpty, clock.now < killDeadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        return found.count
    }

    private static func signal(_ processes: [MarkedProcess], _ number: Int32) {
        let ownGroup = getpgrp()
        for process in processes {
            if process.group == process.pid, process.group > 1, process.group != ownGroup {
                kill(-process.group, number)
            } else if process.pid > 1 {
                kill(process.pid, number)
            }
        }
    }
}
