import Foundation
import Synchronization

/// The one-engine-per-run lease: an exclusive `flock` on `runs/<id>/lease`, held for the life of
/// the engine's work on the run. The kernel drops it when the engine dies, however it dies, so a
/// `resume` that gets the lease knows the previous engine is gone.
///
/// The holder writes its identity (`<pid> <start time> <boot id>`) into the file right after
/// taking the lock, so an engine refused the lease names the live holder, not the engine the
/// run's record still names (after a crash, the dead one).
package final class RunLease: Sendable {
    private let lock: Mutex<FileLock?>
    /// The run.
    public let runID: String

    /// How long a refused engine waits for the holder to write its identity (it does so at once).
    static let holderWait: Duration = .seconds(1)

    /// Takes the lease of a run, or throws exit 75 naming the engine that holds it.
    /// - Parameter holder: the engine recorded for the run, named in the message when the lease
    ///   file does not name a live engine.
    public init(stateDirectory: StateDirectory, runID: String, holder: EngineIdentity? = nil) throws(EngineError) {
        self.runID = runID
        let file: FileLock
        do {
            _ = try stateDirectory.ensureSubdirectory("runs/\(runID)")
            file = try FileLock(path: try stateDirectory.runDirectory(runID) + "/lease")
            guard try file.tryLock() else {
                let live = Self.liveHolder(of: file.path) ?? holder.flatMap { $0.isAlive ? $0 : nil }
                let who = live.map { " (engine pid \($0.pid))" } ?? ""
                throw EngineError(.runHeld, "run \(runID) is held by another live engine\(who); try again when it has finished")
            }
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(error)
        }
        Self.writeIdentity(EngineIdentity.current, to: file.path)
        lock = Mutex(file)
    }

    /// Gives the lease up (also done when the lease is released or the process exits).
    public func release() {
        lock.withLock { file in
            file?.unlock()
            file = nil
        }
    }

    deinit { release() }

    /// Writes the holder's identity over the file's content. Best effort: a holder that cannot
    /// write it is still the holder, and a refused engine then names the run's recorded engine.
    private static func writeIdentity(_ identity: EngineIdentity, to path: String) {
        let fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        // Another descriptor of the file: closing it leaves the flock of the FileLock's alone.
        defer { close(fd) }
        let line = Array("\(identity.pid) \(identity.startTime) \(identity.bootID)\n".utf8)
        let written = line.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        if written == line.count { _ = ftruncate(fd, off_t(line.count)) }
    }

    /// The live engine the lease file names, waiting (bounded) while it still names a dead one
    /// or nothing: the new holder writes its identity just after taking the lock.
    private static func liveHolder(of path: String) -> EngineIdentity? {
        let deadline = ContinuousClock.now.advanced(by: holderWait)
        while true {
            if let identity = readIdentity(path), identity.isAlive { return identity }
            guard ContinuousClock.now < deadline else { return nil }
            usleep(5_000)
        }
    }

    private static func readIdentity(_ path: String) -> EngineIdentity? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0, let newline = buffer[0..<count].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let fields = String(decoding: buffer[0..<newline], as: UTF8.self).split(separator: " ")
        guard fields.count == 3, let pid = Int32(fields[0]), pid > 0, let startTime = Int64(fields[1]) else { return nil }
        return EngineIdentity(pid: pid, startTime: startTime, bootID: String(fields[2]))
    }
}
