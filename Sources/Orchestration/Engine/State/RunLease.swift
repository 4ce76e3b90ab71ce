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
                let live = EngineIdentity.liveHolder(of: file.path) ?? holder.flatMap { $0.isAlive ? $0 : nil }
                let who = live.map { " (engine pid \($0.pid))" } ?? ""
                throw EngineError(.runHeld, "run \(runID) is held by another live engine\(who); try again when it has finished")
            }
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(error)
        }
        EngineIdentity.current.write(to: file.path)
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
}
