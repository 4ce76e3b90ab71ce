import Foundation

/// How human output looks: colour and emoji on a capable terminal, plain ASCII otherwise
/// (`--no-color`, `NO_COLOR`, `TERM=dumb`, `CI=true`, or not a terminal).
public struct TextStyle: Sendable, Hashable {
    /// Whether to use ANSI colour and emoji.
    public var rich: Bool
    /// The widest line to print.
    public var width: Int

    /// Creates a style.
    public init(rich: Bool, width: Int = 100) {
        self.rich = rich
        self.width = min(width, 100)
    }

    /// The style for a file descriptor, from the environment and `--no-color`.
    public static func detect(fd: Int32 = 1, noColor: Bool = false,
                              environment: [String: String] = ProcessInfo.processInfo.environment) -> TextStyle {
        let plain = noColor || environment["NO_COLOR"] != nil || environment["TERM"] == "dumb"
            || environment["CI"] == "true" || isatty(fd) == 0
        var width = 100
        var size = winsize()
        if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { width = Int(size.ws_col) }
        return TextStyle(rich: !plain, width: width)
    }

    /// The marker of a step or run status.
    public func marker(_ status: StepStatus) -> String {
        switch status {
        case .succeeded: return rich ? "✅" : "PASS"
        case .failed: return rich ? "❌" : "FAIL"
        case .skipped: return rich ? "⏭️" : "SKIP"
        case .cancelled: return rich ? "⚠️" : "WARN"
        case .pending, .running: return rich ? "⏱️" : "TIME"
        }
    }

    /// Wraps text in an ANSI colour when rich.
    public func color(_ text: String, _ code: String) -> String {
        rich ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    /// The display width of a marker (emoji take two columns).
    func markerWidth(_ status: StepStatus) -> Int { rich ? 2 : 4 }
}

/// Shortens text to a number of columns with an ellipsis.
func truncate(_ text: String, to width: Int) -> String {
    guard text.count > width else { return text }
    guard width > 3 else { return String(text.prefix(width)) }
    return String(text.prefix(width - 3)) + "..."
}

/// Pads text on the right to a number of columns.
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// `0.42s`, `12.3s`, `2m05s`.
public func formatDuration(_ seconds: Double?) -> String {
    guard let seconds else { return "-" }
    if seconds < 10 { return String(format: "%.2fs", seconds) }
    if seconds < 60 { return String(format: "%.1fs", seconds) }
    let minutes = Int(seconds) / 60
    return String(format: "%dm%02ds", minutes, Int(seconds) % 60)
}
