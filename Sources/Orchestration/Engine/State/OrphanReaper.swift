import Foundation

/// Tears down what a dead engine left running: the process groups of its steps.
///
/// A process is recognised as a step of the run by `OMNIBASE_RUN_ID=<run>` in its environment
/// (every step gets it, and children inherit it), read from `/proc/<pid>/environ`. Each such
/// process's group gets SIGTERM and SIGCONT, then SIGKILL after the grace period. Our own group
/// is never signalled.
///
/// - Important: A step process that cleared its environment cannot be found this way. For one
///   that left its step's group (`setsid`) see ``tearDown(marked:grace:)``.
package enum OrphanReaper {
    /// What the takeover found of a dead engine's steps.
    public struct Leftovers: Sendable {
        /// The process groups that were signalled.
        public var groups = 0
        /// The attempts those processes belong to, by their `OMNIBASE_STEP_ID` and
        /// `OMNIBASE_ATTEMPT`: step id -> attempt numbers.
        public var attempts: [String: Set<Int>] = [:]
    }

    /// Process groups that hold processes of a run, with one member each (for verification).
    public static func groups(ofRun runID: String) -> [Int32: Int32] {
        scan(runID: runID).groups
    }

    /// The run's processes (not zombies, not in our group): their groups, and their attempts.
    private static func scan(runID: String) -> (groups: [Int32: Int32], attempts: [String: Set<Int>]) {
        let needle = Array("OMNIBASE_RUN_ID=\(runID)".utf8)
        let stepKey = Array("OMNIBASE_STEP_ID=".utf8)
        let attemptKey = Array("OMNIBASE_ATTEMPT=".utf8)
        let ownGroup = getpgrp()
        let ownPID = getpid()
        var groups: [Int32: Int32] = [:]
        var attempts: [String: Set<Int>] = [:]
        for pid in ProcessTable.pids() where pid != ownPID {
            guard let environ = ProcessTable.environment(of: pid), environ.contains(where: { $0.elementsEqual(needle) }),
                  let entry = ProcessTable.entry(pid: pid), entry.state != UInt8(ascii: "Z"),
                  entry.group != ownGroup, entry.group > 1 else { continue }
            groups[entry.group] = pid
            var stepID: String?
            var attempt: Int?
            for variable in environ {
                if variable.starts(with: stepKey) {
                    stepID = String(decoding: variable.dropFirst(stepKey.count), as: UTF8.self)
                } else if variable.starts(with: attemptKey) {
                    attempt = Int(String(decoding: variable.dropFirst(attemptKey.count), as: UTF8.self))
                }
            }
            if let stepID, let attempt, attempt > 0 { attempts[stepID, default: []].insert(attempt) }
        }
        return (groups, attempts)
    }

    /// Terminates every process group of a run and waits (bounded) until none is left.
    /// - Returns: how many groups were signalled, and the attempts their processes belong to.
    @discardableResult
    public static func reap(runID: String, grace: Duration = .seconds(5)) async -> Leftovers {
        let (found, attempts) = scan(runID: runID)
        let leftovers = Leftovers(groups: found.count, attempts: attempts)
        guard !found.isEmpty else { return leftovers }
        for pgid in found.keys {
            kill(-pgid, SIGTERM)
            kill(-pgid, SIGCONT)
        }
        let deadline = ContinuousClock.now.advanced(by: grace)
        while ContinuousClock.now < deadline, !groups(ofRun: runID).isEmpty {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for pgid in groups(ofRun: runID).keys { kill(-pgid, SIGKILL) }
        let killDeadline = ContinuousClock.now.advanced(by: .seconds(2))
        while ContinuousClock.now < killDeadline, !groups(ofRun: runID).isEmpty {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return leftovers
    }
}
