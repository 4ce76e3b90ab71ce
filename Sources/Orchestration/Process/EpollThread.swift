import COmnibaseShims
import Foundation

/// Starts the process layer's long-lived epoll threads (the exit monitor and the output pump).
enum EpollThread {
    /// Creates an epoll set and a named thread that serves it forever.
    ///
    /// - Returns: The epoll descriptor, or -1 when epoll is unavailable (no thread is started;
    ///   the caller falls back).
    static func start(name: String, serve: @escaping @Sendable (Int32) -> Never) -> Int32 {
        let epollFD = omni_epoll_create()
        guard epollFD >= 0 else { return -1 }
        let thread = Thread { serve(epollFD) }
        thread.name = name
        thread.start()
        return epollFD
    }
}
