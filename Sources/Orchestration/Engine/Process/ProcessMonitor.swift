import COmnibaseShims
import Foundation
import Glibc

/// Observes the exit of every child the engine spawns, off the cooperative pool, without reaping.
///
/// ## Design
/// One monitor thread, started on first use and alive for the life of the engine, blocks in
/// `epoll_wait` on an epoll set that holds one **pidfd** per running child. A pidfd becomes
/// readable when its process exits (it is then a zombie: nothing is reaped here). Registering a
/// child is one `epoll_ctl(ADD)` on the spawning task's thread (the spawn makes the pidfd; on
/// kernels where it cannot, `pidfd_open` first);
/// `epoll_ctl` is safe while another thread sits in `epoll_wait`, and a pidfd that is already
/// readable when added wakes that wait at once, so no eventfd or wake-up pipe is needed.
///
/// Each entry is `EPOLLONESHOT` and its data is a retained pointer to the child's ``ExitWatch``:
/// the event fires exactly once, the monitor takes the pointer back (balancing the retain) and
/// calls ``ExitWatch/markExited()``, which resumes the waiting task. The pidfd is closed only
/// after the child is reaped, by the attempt (``ChildProcess``); closing it also removes it from
/// the set. Per child there is no thread, no timer, no polling and no `/proc` access.
///
/// If pidfds or epoll are unavailable (`ENOSYS` on old kernels, fd limits), that child gets a
/// dedicated thread blocked in `waitid(P_PID, pid, WEXITED | WNOWAIT)` instead.
///
/// - Important: Nothing in the engine may call `waitpid(-1)` or set `SIGCHLD` to `SIG_IGN`: either
///   would reap children behind the monitor's back and lose their exit status.
final class ProcessMonitor: Sendable {
    /// How exits are observed.
    enum Strategy: Sendable {
        /// pidfds in one epoll set served by one thread (falling back per child when needed).
        case pidfdWhenAvailable
        /// A dedicated `waitid` thread per child (the fallback, selectable for tests).
        case threadPerChild
    }

    /// The engine-wide monitor; its thread starts on first use.
    static let shared = ProcessMonitor(strategy: .pidfdWhenAvailable)

    /// The epoll set served by the monitor thread, or -1 when every child gets its own thread.
    private let epollFD: Int32

    /// Creates a monitor.
    ///
    /// - Important: With `.pidfdWhenAvailable` this starts a thread that never ends; create that
    ///   kind once (``shared``).
    init(strategy: Strategy) {
        guard strategy == .pidfdWhenAvailable else {
            epollFD = -1
            return
        }
        epollFD = EpollThread.start(name: "omnibase.process-monitor") { Self.serve(epollFD: $0) }
    }

    /// Starts observing `pid`, a child of this process that has not been reaped.
    ///
    /// - Parameter pidfd: The child's pidfd if the spawn made one (ownership passes here), or -1
    ///   to open one now.
    /// - Returns: The watch to await, and the child's pidfd (-1 when the child is observed by a
    ///   dedicated thread). The caller owns the pidfd and closes it after reaping the child.
    func watch(pid: pid_t, pidfd given: Int32 = -1) -> (exit: ExitWatch, pidfd: Int32) {
        let exit = ExitWatch()
        let pidfd = given >= 0 || epollFD < 0 ? given : omni_pidfd_open(pid)
        if epollFD >= 0 && pidfd >= 0 {
            let retained = Unmanaged.passRetained(exit)
            let token = UInt64(UInt(bitPattern: retained.toOpaque()))
            if omni_epoll_add_oneshot(epollFD, pidfd, token) == 0 {
                return (exit, pidfd)
            }
            retained.release()
        }
        if pidfd >= 0 { close(pidfd) }
        Self.startWaiterThread(pid: pid, exit: exit)
        return (exit, -1)
    }

    /// The monitor thread's loop: turns readable pidfds into ``ExitWatch/markExited()`` calls.
    private static func serve(epollFD: Int32) -> Never {
        let capacity: Int32 = 64
        let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: Int(capacity))
        while true {
            let count = SystemCallError.retryingOnInterrupt { omni_epoll_wait(epollFD, tokens, capacity, -1) }
            guard count >= 0 else {
                preconditionFailure("process monitor: \(SystemCallError(call: "epoll_wait", code: errno))")
            }
            for index in 0..<Int(count) {
                // Balances the `passRetained` in `watch(pid:)`: EPOLLONESHOT delivers each
                // registration exactly once, and registrations are never removed before firing.
                let pointer = UnsafeRawPointer(bitPattern: UInt(tokens[index]))!
                Unmanaged<ExitWatch>.fromOpaque(pointer).takeRetainedValue().markExited()
            }
        }
    }

    /// The fallback: one thread that blocks until `pid` exits, without reaping it.
    private static func startWaiterThread(pid: pid_t, exit: ExitWatch) {
        let thread = Thread {
            // On failure (ECHILD: something else reaped the child) the exit is reported anyway,
            // so the waiting task wakes; reaping then reports the lost status.
            _ = SystemCallError.retryingOnInterrupt { omni_waitid_exited_nowait(pid) }
            exit.markExited()
        }
        thread.name = "omnibase.wait.\(pid)"
        thread.start()
    }
}
