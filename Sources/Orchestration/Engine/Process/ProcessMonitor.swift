import COmnibaseShims
import Foundation
import Glibc

/// Observes the exit of every child the engine spawns, off the cooperative pool, without reaping.
///
/// ## Design
/// Each child's **pidfd** goes into the ``ProcessLoop``'s epoll set (one `epoll_ctl(ADD)` on the
/// spawning task's thread; the spawn makes the pidfd, on kernels where it cannot, `pidfd_open`
/// first). A pidfd becomes readable when its process exits (it is then a zombie: nothing is reaped
/// here). The entry is `EPOLLONESHOT` and names the child's ``ExitEntry``: the loop reads the
/// child's output streams and calls ``ExitWatch/markExited()``, which resumes the waiting task.
/// The pidfd is closed only after the child is reaped, by the attempt (``ChildProcess``); closing
/// it also removes it from the set. Per child there is no thread, no timer, no polling and no
/// `/proc` access.
///
/// If pidfds or the loop are unavailable (`ENOSYS` on old kernels, fd limits), that child gets a
/// dedicated thread blocked in `waitid(P_PID, pid, WEXITED | WNOWAIT)` instead.
///
/// - Important: Nothing in the engine may call `waitpid(-1)` or set `SIGCHLD` to `SIG_IGN`: either
///   would reap children behind the monitor's back and lose their exit status.
final class ProcessMonitor: Sendable {
    /// How exits are observed.
    enum Strategy: Sendable {
        /// pidfds in the ``ProcessLoop`` (falling back per child when needed).
        case pidfdWhenAvailable
        /// A dedicated `waitid` thread per child (the fallback, selectable for tests).
        case threadPerChild
    }

    /// The engine-wide monitor, on the engine-wide loop.
    static let shared = ProcessMonitor(strategy: .pidfdWhenAvailable)

    /// The loop that watches pidfds, or `nil` when every child gets its own thread.
    private let loop: ProcessLoop?

    /// Creates a monitor.
    init(strategy: Strategy) {
        loop = strategy == .pidfdWhenAvailable ? ProcessLoop.shared : nil
    }

    /// Starts observing `pid`, a child of this process that has not been reaped.
    ///
    /// - Parameters:
    ///   - pidfd: The child's pidfd if the spawn made one (ownership passes here), or -1 to open
    ///     one now.
    ///   - streams: The child's output streams in the loop, read to end-of-file (as far as they
    ///     go) before its exit is marked, so the attempt finds its output complete.
    /// - Returns: The watch to await, and the child's pidfd (-1 when the child is observed by a
    ///   dedicated thread). The caller owns the pidfd and closes it after reaping the child.
    func watch(pid: pid_t, pidfd given: Int32 = -1, streams: [LogCopy] = []) -> (exit: ExitWatch, pidfd: Int32) {
        let exit = ExitWatch()
        let pidfd = given >= 0 || loop == nil ? given : omni_pidfd_open(pid)
        if let loop, pidfd >= 0, loop.register(ExitEntry(exit: exit, streams: streams), pidfd: pidfd) {
            return (exit, pidfd)
        }
        if pidfd >= 0 { close(pidfd) }
        Self.startWaiterThread(pid: pid, exit: exit)
        return (exit, -1)
    }

    /// The fallback: one thread that blocks until `pid` exits, without reaping it.
    private static func startWaiterThread(pid: pid_t, exit: ExitWatch) {
        startThread(named: "omnibase-wait") {
            // On failure (ECHILD: something else reaped the child) the exit is reported anyway,
            // so the waiting task wakes; reaping then reports the lost status.
            _ = SystemCallError.retryingOnInterrupt { omni_waitid_exited_nowait(pid) }
            exit.markExited()
        }
    }
}
