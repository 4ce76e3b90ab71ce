import COmnibaseShims
import Foundation
import Glibc

/// Starts the process layer's long-lived epoll threads (the exit monitor and the output pump).
enum EpollThread {
    /// Creates an epoll set and a named thread that serves it forever.
    ///
    /// - Parameter watching: Descriptors (level-triggered, with their tokens) put in the set
    ///   before the thread starts.
    /// - Returns: The epoll descriptor, or -1 when epoll is unavailable or a descriptor cannot be
    ///   added (no thread is started; the caller falls back).
    static func start(name: String, watching: [(fd: Int32, token: UInt64)] = [],
                      serve: @escaping @Sendable (Int32) -> Never) -> Int32 {
        let epollFD = omni_epoll_create()
        guard epollFD >= 0 else { return -1 }
        guard watching.allSatisfy({ omni_epoll_add(epollFD, $0.fd, $0.token) == 0 }) else {
            close(epollFD)
            return -1
        }
        let thread = Thread { serve(epollFD) }
        thread.name = name
        thread.start()
        return epollFD
    }
}
