import Glibc

/// The engine's one table of signal names, for messages, the CLI and reports.
package enum SignalName {
    /// The conventional name of the signals a step is likely to die of or be sent, `nil` for
    /// any other number.
    package static func name(for number: Int32) -> String? {
        switch number {
        case SIGHUP: "SIGHUP"
        case SIGINT: "SIGINT"
        case SIGQUIT: "SIGQUIT"
        case SIGILL: "SIGILL"
        case SIGABRT: "SIGABRT"
        case SIGBUS: "SIGBUS"
        case SIGFPE: "SIGFPE"
        case SIGKILL: "SIGKILL"
        case SIGSEGV: "SIGSEGV"
        case SIGPIPE: "SIGPIPE"
        case SIGALRM: "SIGALRM"
        case SIGTERM: "SIGTERM"
        case SIGUSR1: "SIGUSR1"
        case SIGUSR2: "SIGUSR2"
        default: nil
        }
    }

    /// The name, or `signal N` for a number without one: `SIGKILL`, `signal 42`.
    package static func describe(_ number: Int32) -> String {
        name(for: number) ?? "signal \(number)"
    }
}
