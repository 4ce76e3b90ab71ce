import Foundation

/// The holder's identity in a lock file (a run's `lease`, `agents.lock`), so that a process
/// refused the lock names the live holder (SPEC section 5, exit 75: "the message names it").
extension EngineIdentity {
    /// How long a refused process waits for the holder to write its identity (it does so at once).
    static let holderWait: Duration = .seconds(1)

    /// Writes this identity (`<pid> <start time> <boot id>`) over the content of the lock file
    /// its holder has just locked. Best effort: a holder that cannot write it is still the
    /// holder, and a refused process then names whatever else it knows.
    package func write(to path: String) {
        let fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        // Another descriptor of the file: closing it leaves the lock's flock alone.
        defer { close(fd) }
        let line = Array("\(pid) \(startTime) \(bootID)\n".utf8)
        let written = line.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        if written == line.count { _ = ftruncate(fd, off_t(line.count)) }
    }

    /// The live process a lock file names, waiting (bounded) while it still names a dead one
    /// or nothing: the new holder writes its identity just after taking the lock.
    package static func liveHolder(of path: String) -> EngineIdentity? {
        let deadline = ContinuousClock.now.advanced(by: holderWait)
        while true {
            if let identity = read(from: path), identity.isAlive { return identity }
            guard ContinuousClock.now < deadline else { return nil }
            usleep(5_000)
        }
    }

    private static func read(from path: String) -> EngineIdentity? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0, let newline = buffer[0..<count].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let fields = String(decoding: buffer[0..<newline], as: UTF8.self).split(separator: " ")
        guard fields.count == 3, let pid = Int32(fields[0]), pid > 0, let startTime = Int64(fields[1]) else { return nil }
        return EngineIdentity(pid: pid, startTime: startTime, bootID: String(fields[2]))
    }
}
