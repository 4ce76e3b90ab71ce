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

    /// Text shortened with an ellipsis to the style's width, counting terminal columns (emoji
    /// take two).
    public func fit(_ text: String) -> String { truncate(text, to: width) }

    /// Wraps text in an ANSI colour when rich.
    public func color(_ text: String, _ code: String) -> String {
        rich ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

}

/// The columns a character takes on a terminal: emoji and East Asian wide characters take two,
/// combining marks and variation selectors none.
package func columns(_ character: Character) -> Int {
    var width = 0
    for scalar in character.unicodeScalars {
        switch scalar.value {
        case 0xFE00...0xFE0F, 0x200B...0x200F: continue
        case 0x1100...0x115F, 0x2E80...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
             0x1F000...0x1FAFF, 0x2600...0x27BF, 0x2B00...0x2BFF, 0x23E9...0x23FA:
            width = max(width, 2)
        default:
            if !scalar.properties.isGraphemeExtend { width = max(width, 1) }
        }
    }
    return width
}

/// The columns a string takes on a terminal.
package func displayWidth(_ text: String) -> Int { text.reduce(0) { $0 + columns($1) } }

/// Shortens text to a number of terminal columns with an ellipsis.
package func truncate(_ text: String, to width: Int) -> String {
    guard displayWidth(text) > width else { return text }
    let budget = width > 3 ? width - 3 : width
    var out = ""
    var used = 0
    for character in text {
        let w = columns(character)
        if used + w > budget { break }
        out.append(character)
        used += w
    }
    return width > 3 ? out + "..." : out
}

/// Lays words (a command's quoted arguments) out in lines of at most `width` columns, joined by
/// spaces, each line but the last ending in ` \` (a shell's line continuation, so the lines
/// still read as one command) and each after the first starting with `indent`. A word wider than
/// a line is cut with an ellipsis (the JSON output has it whole).
package func wrapWords(_ words: [String], first: String, indent: String, width: Int) -> [String] {
    var lines: [String] = []
    var line = first
    var empty = first.isEmpty
    for word in words {
        let room = width - displayWidth(empty ? line : line + " ") - 2
        if !empty && displayWidth(word) > room {
            lines.append(line + " \\")
            line = indent
            empty = true
        }
        let fitted = truncate(word, to: max(4, width - displayWidth(empty ? line : line + " ") - 2))
        line += (empty ? "" : " ") + fitted
        empty = false
    }
    lines.append(line)
    return lines
}

/// Pads text on the right to a number of terminal columns.
package func pad(_ text: String, _ width: Int) -> String {
    let used = displayWidth(text)
    return used >= width ? text : text + String(repeating: " ", count: width - used)
}

/// `1 step`, `2 steps`: a count with its noun, singular for one (every human view counts this way).
package func counted(_ count: Int, _ singular: String, _ plural: String? = nil) -> String {
    "\(count) \(count == 1 ? singular : plural ?? singular + "s")"
}

/// `0.42s`, `12.3s`, `2m05s`.
public func formatDuration(_ seconds: Double?) -> String {
    guard let seconds else { return "-" }
    if seconds < 10 { return String(format: "%.2fs", seconds) }
    if seconds < 60 { return String(format: "%.1fs", seconds) }
    let minutes = Int(seconds) / 60
    return String(format: "%dm%02ds", minutes, Int(seconds) % 60)
}
