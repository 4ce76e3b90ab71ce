import Glibc

/// A system call that failed: its name and the error number, for messages and preconditions.
struct SystemCallError: Error, CustomStringConvertible {
    /// The call, as written in the code (`"waitpid"`, `"epoll_wait"`).
    var call: String
    /// The error number the call reported.
    var code: Int32

    /// `waitpid: No child processes (errno 10)`.
    var description: String { "\(call): \(Self.message(for: code)) (errno \(code))" }

    /// The C library's text for an error number (`strerror`).
    static func message(for code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// Runs `call` again for as long as it fails with `EINTR`; returns its last result.
    ///
    /// `call` follows the C convention: `-1` and `errno` on failure.
    static func retryingOnInterrupt<T: BinaryInteger>(_ call: () -> T) -> T {
        while true {
            let result = call()
            if result == -1 && errno == EINTR { continue }
            return result
        }
    }
}
