import Glibc

/// The engine's one reader of the kernel's process table (`/proc`): which processes exist, their
/// `/proc/<pid>/stat` fields (state, parent, process group, session, start time) and their
/// environment (`/proc/<pid>/environ`). Used after teardowns, by the orphan reaper and for the
/// engine's identity, never on the normal path of a step.
enum ProcessTable {
    /// One process as `/proc/<pid>/stat` shows it.
    struct Entry: Sendable, Equatable {
        /// The process id.
        var pid: pid_t
        /// The command name (`comm`, at most 15 bytes, may hold spaces and parentheses).
        var command: String = ""
        /// The state letter: `R`, `S`, `D`, `T`, `Z` (zombie), `X` (dead)...
        var state: UInt8
        /// The parent's pid.
        var parent: pid_t
        /// The process group id.
        var group: pid_t
        /// The session id.
        var session: pid_t = 0
        /// The start time in clock ticks after boot (field 22); `nil` if the line was cut short.
        var startTime: Int64?

        /// Whether the process still runs code (not a zombie, not dead).
        var isAlive: Bool { state != UInt8(ascii: "Z") && state != UInt8(ascii: "X") }
    }

    /// The pids currently listed in `/proc`.
    static func pids() -> [pid_t] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        var result: [pid_t] = []
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
            if let pid { result.append(pid) }
        }
        return result
    }

    /// The processes other than this one that hold one of `inodes` as a pipe (an fd whose link
    /// reads `pipe:[INODE]`); processes that vanish during the scan are skipped.
    static func holders(ofPipes inodes: Set<UInt64>) -> [pid_t] {
        let own = getpid()
        var result: [pid_t] = []
        var link = [CChar](repeating: 0, count: 64)
        for pid in pids() where pid != own {
            guard let directory = opendir("/proc/\(pid)/fd") else { continue }
            defer { closedir(directory) }
            let descriptors = dirfd(directory)
            while let item = readdir(directory) {
                let count = withUnsafeBytes(of: item.pointee.d_name) { name in
                    link.withUnsafeMutableBufferPointer { buffer in
                        readlinkat(descriptors, name.baseAddress!.assumingMemoryBound(to: CChar.self), buffer.baseAddress!,
                                   buffer.count - 1)
                    }
                }
                guard count > 6 else { continue }
                let text = String(decoding: link[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                guard text.hasPrefix("pipe:["), text.hasSuffix("]"),
                      let inode = UInt64(text.dropFirst(6).dropLast()), inodes.contains(inode) else { continue }
                result.append(pid)
                break
            }
        }
        return result
    }

    /// Every process currently listed in `/proc`; processes that vanish during the scan are skipped.
    static func entries() -> [Entry] {
        pids().compactMap { entry(pid: $0) }
    }

    /// The entry of one process, or `nil` if it does not exist (any more).
    static func entry(pid: pid_t) -> Entry? {
        // The fields up to the start time take well under 512 bytes (comm is at most 15 bytes
        // and each number at most 20 digits).
        let fd = SystemCallError.retryingOnInterrupt { open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { raw in
            SystemCallError.retryingOnInterrupt { read(fd, raw.baseAddress, raw.count) }
        }
        guard count > 0 else { return nil }
        return parse(stat: buffer[0..<count])
    }

    /// Parses one `/proc/<pid>/stat` line: `pid (comm) S ppid pgrp session ... starttime ...`.
    ///
    /// `comm` may contain spaces and parentheses, so it runs from the first `(` to the **last**
    /// `)`; the fields after it are counted from there.
    ///
    /// - Returns: The entry, or `nil` when the line does not have the fields up to the session.
    static func parse(stat line: ArraySlice<UInt8>) -> Entry? {
        guard let open = line.firstIndex(of: UInt8(ascii: "(")), let close = line.lastIndex(of: UInt8(ascii: ")")),
              open < close, let pid = line[..<open].split(separator: UInt8(ascii: " ")).first.flatMap(integer)
        else { return nil }
        let command = String(decoding: line[line.index(after: open)..<close], as: UTF8.self)
        // Field 3 (state) is the first after comm; the start time is field 22.
        let fields = line[line.index(after: close)...].split(separator: UInt8(ascii: " "), maxSplits: 20)
        guard fields.count >= 4, fields[0].count == 1, let state = fields[0].first,
              let parent = integer(fields[1]), let group = integer(fields[2]), let session = integer(fields[3])
        else { return nil }
        let startTime = fields.count > 19 ? int64(fields[19]) : nil
        return Entry(pid: pid, command: command, state: state, parent: parent, group: group, session: session,
                     startTime: startTime)
    }

    /// The environment entries (`NAME=value`, as bytes) of a process, or `nil` when it cannot be
    /// read (gone, or not ours).
    static func environment(of pid: pid_t) -> [ArraySlice<UInt8>]? {
        let fd = SystemCallError.retryingOnInterrupt { open("/proc/\(pid)/environ", O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { raw in
                SystemCallError.retryingOnInterrupt { read(fd, raw.baseAddress, raw.count) }
            }
            if count < 0 { return nil }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes.split(separator: 0, omittingEmptySubsequences: true)
    }

    private static func integer<Digits: Collection<UInt8>>(_ digits: Digits) -> pid_t? {
        int64(digits).flatMap { pid_t(exactly: $0) }
    }

    private static func int64<Digits: Collection<UInt8>>(_ digits: Digits) -> Int64? {
        guard !digits.isEmpty else { return nil }
        var value: Int64 = 0
        var negative = false
        for (offset, byte) in digits.enumerated() {
            if offset == 0 && byte == UInt8(ascii: "-") {
                negative = true
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (multiplied, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = multiplied + Int64(byte - UInt8(ascii: "0"))
        }
        return negative ? -value : value
    }
}
