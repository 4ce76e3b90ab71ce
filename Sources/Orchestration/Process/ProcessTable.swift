import Glibc

/// A read of the kernel's process table (`/proc/<pid>/stat`): which processes exist, their state,
/// parent and process group. Used only after a teardown (and by tests), never on the normal path.
enum ProcessTable {
    /// One process as `/proc/<pid>/stat` shows it.
    struct Entry: Sendable, Equatable {
        /// The process id.
        var pid: pid_t
        /// The state letter: `R`, `S`, `D`, `T`, `Z` (zombie), `X` (dead)...
        var state: UInt8
        /// The parent's pid.
        var parent: pid_t
        /// The process group id.
        var group: pid_t

        /// Whether the process still runs code (not a zombie, not dead).
        var isAlive: Bool { state != UInt8(ascii: "Z") && state != UInt8(ascii: "X") }
    }

    /// Every process currently listed in `/proc`; processes that vanish during the scan are skipped.
    static func entries() -> [Entry] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        var result: [Entry] = []
        while let item = readdir(directory) {
            let pid: pid_t? = withUnsafeBytes(of: item.pointee.d_name) { name in
                var value: pid_t = 0
                for byte in name {
                    if byte == 0 { break }
                    guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                    value = value &* 10 &+ pid_t(byte - UInt8(ascii: "0"))
                }
                return value > 0 ? value : nil
            }
            if let pid, let entry = entry(pid: pid) {
                result.append(entry)
            }
        }
        return result
    }

    /// The entry of one process, or `nil` if it does not exist (any more).
    static func entry(pid: pid_t) -> Entry? {
        let fd = SystemCallError.retryingOnInterrupt { open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // "pid (comm) S ppid pgrp ...": comm is at most 15 bytes, so 256 bytes hold the fields
        // needed; comm may contain spaces and parentheses, so parse from the LAST ')'.
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { raw in
            SystemCallError.retryingOnInterrupt { read(fd, raw.baseAddress, raw.count) }
        }
        guard count > 0 else { return nil }
        let line = buffer[0..<count]
        guard let close = line.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = line[(close + 1)...].split(separator: UInt8(ascii: " "), maxSplits: 3)
        guard fields.count >= 3, let state = fields[0].first,
            let parent = Self.integer(fields[1]), let group = Self.integer(fields[2])
        else { return nil }
        return Entry(pid: pid, state: state, parent: parent, group: group)
    }

    private static func integer(_ digits: ArraySlice<UInt8>) -> pid_t? {
        var value: pid_t = 0
        var negative = false
        for (offset, byte) in digits.enumerated() {
            if offset == 0 && byte == UInt8(ascii: "-") {
                negative = true
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value &* 10 &+ pid_t(byte - UInt8(ascii: "0"))
        }
        return negative ? -value : value
    }
}
