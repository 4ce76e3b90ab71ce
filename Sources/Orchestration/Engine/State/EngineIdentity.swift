import Foundation

/// Which engine process holds a run: its pid, its start time (so a reused pid is not mistaken
/// for it) and the boot it belongs to.
public struct EngineIdentity: Sendable, Hashable, CustomStringConvertible {
    /// The process id.
    public var pid: Int32
    /// The process start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    public var startTime: Int64
    /// `/proc/sys/kernel/random/boot_id`.
    public var bootID: String

    /// Creates an identity.
    public init(pid: Int32, startTime: Int64, bootID: String) {
        self.pid = pid
        self.startTime = startTime
        self.bootID = bootID
    }

    /// This process.
    public static var current: EngineIdentity {
        let pid = getpid()
        return EngineIdentity(pid: pid, startTime: startTime(of: pid) ?? 0, bootID: currentBootID)
    }

    /// The boot id of the running kernel.
    public static var currentBootID: String {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    /// A process's start time, or nil if it does not exist.
    public static func startTime(of pid: Int32) -> Int64? {
        ProcessTable.entry(pid: pid)?.startTime
    }

    /// Whether this identity is a live process now (same boot, same pid, same start time).
    public var isAlive: Bool {
        bootID == Self.currentBootID && Self.startTime(of: pid) == startTime && kill(pid, 0) == 0
    }

    public var description: String { "pid \(pid)" }
}
