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
public enum OrphanReaper {
    /// Process groups that hold processes of a run, with one member each (for verification).
    public static func groups(ofRun runID: String) -> [Int32: Int32] {
        let needle = Array("OMNIBASE_RUN_ID=\(runID)".utf8)
        let ownGroup = getpgrp()
        let ownPID = getpid()
        var groups: [Int32: Int32] = [:]
        for pid in ProcessTable.pids() where pid != ownPID {
            guard let environ = ProcessTable.environment(of: pid), environ.contains(where: { $0.elementsEqual(needle) }),
                  let entry = ProcessTable.entry(pid: pid), entry.state != UInt8(ascii: "Z"),
                  entry.group != ownGroup, entry.group > 1 else { continue }
            groups[entry.group] = pid
        }
        return groups
    }

    /// Terminates every process group of a run and waits (bounded) until none is left.
    /// - Returns: the number of groups that were signalled.
    @discardableResult
    public static func reap(runID: String, grace: Duration = .seconds(5)) async -> Int {
        let found = groups(ofRun: runID)
        guard !found.isEmpty else { return 0 }
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
        return found.count
    }
}
