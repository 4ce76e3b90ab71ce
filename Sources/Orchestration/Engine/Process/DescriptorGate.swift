import COmnibaseShims
import Glibc
import Synchronization

/// Keeps this process's children from taking its last file descriptors, and lets a step that
/// found none wait for a running step to end instead of failing.
///
/// Why a reserve: Swift's thread pool on Linux (libdispatch) checks its workers once a second
/// by opening `/proc/<tid>/stat`, and it crashes the process (`SIGILL`, "workq: registered
/// worker exited prematurely") when that `open` fails while work is queued. An engine whose
/// running steps hold every descriptor it may open therefore dies at the next tick, and the
/// store, the event log and `serve` could not open a file either. So a spawn that would leave
/// fewer than ``reserve`` descriptors free is refused before it takes any (as `EMFILE`).
///
/// Why waiting: each running step holds about 3 descriptors (two pipes and a pidfd), so what a
/// step ending gives back is what a refused step needs. A refused step waits for a running
/// child of this process to be released (``leave()``) and tries again, however many times; only
/// when no child is running is there nothing to wait for, and the launch fails with the
/// sentence that names the limit. So a plan wider than its open-files limit allows runs at the
/// width the limit allows.
///
/// Counting (``omni_open_descriptors``: the size `stat` gives `/proc/self/fd`) is done only when
/// the children could matter: a limit under 4,096, or children that may hold an eighth of it.
package final class DescriptorGate: Sendable {
    /// The one gate of this process: descriptors are a per-process resource.
    package static let shared = DescriptorGate()

    /// Descriptors left free for everything but the children: the thread pool's check, SQLite,
    /// the event log, `serve`'s connections, the folder reads of the `PATH` cache.
    static let reserve = 16
    /// The most a spawn holds at once in the engine (two pipes of which the child's ends are
    /// closed after the spawn, a pidfd, a log file).
    static let perSpawn = 5

    private struct State {
        /// Children started and not yet released.
        var live = 0
        /// Releases so far: a refused launch that saw this number waits only if it is unchanged.
        var releases: UInt64 = 0
        /// Launches waiting for a release, oldest first.
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    init() {}

    /// The number of releases so far, taken before a launch: what ``waitForRelease(after:)``
    /// compares with, so that a release between the refusal and the wait is not missed.
    package var releases: UInt64 { state.withLock { $0.releases } }

    /// How many launches wait for a release now.
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Whether a spawn may take its descriptors now without leaving fewer than ``reserve`` free.
    package func hasRoom() -> Bool {
        guard let maximum = Self.limit else { return true }
        let live = state.withLock { $0.live }
        if maximum >= 4_096 && live * Self.perSpawn * 8 < maximum { return true }
        guard let open = Self.openDescriptors() else { return false }
        return maximum - open >= Self.reserve + Self.perSpawn
    }

    /// A child was started: its descriptors are held until ``leave()``.
    package func enter() {
        state.withLock { $0.live += 1 }
    }

    /// A child's descriptors are closed: the oldest waiting launch may try again (all of them
    /// when no child is left, since nothing else would wake them).
    package func leave() {
        let woken: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.live -= 1
            state.releases &+= 1
            guard !state.waiters.isEmpty else { return [] }
            if state.live == 0 {
                defer { state.waiters.removeAll() }
                return state.waiters.map(\.continuation)
            }
            return [state.waiters.removeFirst().continuation]
        }
        for continuation in woken { continuation.resume() }
    }

    /// Waits until a child is released after the launch that saw `releases` was refused.
    ///
    /// - Returns: false at once when no child is running (nothing would ever wake the wait),
    ///   true after a release or when the task is cancelled (the caller checks).
    package func waitForRelease(after releases: UInt64) async -> Bool {
        let id: UInt64? = state.withLock { state in
            guard state.live > 0 else { return nil }
            let id = state.nextWaiter
            state.nextWaiter &+= 1
            return id
        }
        guard let id else { return false }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.releases != releases || state.live == 0 || Task.isCancelled { return true }
                    state.waiters.append((id, continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state in
                state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
            }
            continuation?.resume()
        }
        return true
    }

    /// The fewest open files a run starts with. Its state alone takes about 20 (SQLite's
    /// database, WAL, shared memory and lock, the event log, the run's journals, the process
    /// loop's epoll, signal, event and timer descriptors) before any step; below this opening
    /// the state could take the last descriptor while the thread pool checks its workers, which
    /// crashes the process (see the type's comment), so a run refuses to start instead. From
    /// here on every spawn keeps ``reserve`` free.
    package static let leastToRun = 32

    /// Refuses to start a run when the open-files limit (raised to the hard limit first) is
    /// below ``leastToRun``, in one sentence that names it.
    /// - Throws: ``EngineError`` (exit 74).
    package static func requireRoomToRun() throws(EngineError) {
        guard let limit, limit < leastToRun else { return }
        throw EngineError(.stateFailure, "too few open files: this process may hold \(limit) at once (ulimit -n) and "
                          + "a run needs at least \(leastToRun); raise the limit and run the command again")
    }

    /// The soft limit of open files once the first spawn has raised it to the hard one (see
    /// ``LocalProcess``), read once: nil when there is none.
    private static let limit: Int? = {
        omni_raise_open_files_limit()
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0,
              limit.rlim_cur != rlim_t.max else { return nil } // RLIM_INFINITY
        return Int(clamping: limit.rlim_cur)
    }()

    /// The number of descriptors this process has open, or nil if it cannot be told.
    static func openDescriptors() -> Int? {
        let count = omni_open_descriptors()
        return count < 0 ? nil : count
    }
}
