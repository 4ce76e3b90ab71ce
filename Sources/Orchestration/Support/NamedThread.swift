import COmnibaseShims
import Foundation

/// Starts a thread that carries `name` where the system shows threads (`ps -L`, `top -H`, `perf`,
/// `/proc/PID/task/*/comm`). Foundation's `Thread.name`, set before `start()`, never reaches the
/// kernel on Linux (such threads showed as the pool thread that started them), and Linux refuses
/// a name longer than 15 bytes, so `name` must fit.
package func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
    precondition(name.utf8.count <= 15, "a thread's name is at most 15 bytes on Linux: \(name)")
    Thread {
        name.withCString { omni_name_thread($0) }
        body()
    }.start()
}
