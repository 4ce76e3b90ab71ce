/// Text from a plan or a step made safe to print on a terminal.
///
/// A plan id, a step name, an error message or a task id may hold control characters: a newline
/// forges extra report lines, and an escape sequence (`ESC [ ... m`, `ESC ] ... BEL`) can recolour
/// the terminal, rewrite its title, move the cursor over earlier lines or hide text. Every human
/// view (run report, live progress, `runs list/show/events`, dry run, graph headers, `orch`,
/// `agents status` and progress, error messages) shows such text through ``escaped(_:)``, with or
/// without colour; the view's own line breaks and colour codes are added around it.
///
/// Escapes, in the style of Swift string literals:
/// - `\n`, `\r`, `\t`; `\e` for ESC;
/// - every other C0 control, DEL and the C1 controls (U+0080 to U+009F, among them the 8-bit CSI
///   U+009B) as `\u{XX}`;
/// - the Unicode line and paragraph separators (U+2028, U+2029) and the bidirectional overrides
///   and isolates (U+202A to U+202E, U+2066 to U+2069), which reorder what a terminal shows,
///   as `\u{XXXX}`.
///
/// A backslash is left as it is, so `\n` in the output is ambiguous with a literal backslash-n in
/// the text; the JSON output is exact.
public enum TerminalText {
    /// `text` with its control characters escaped; `text` itself when it has none.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{1B}": out += "\\e"
            default: out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            }
        }
        return out
    }

    /// Whether a scalar is shown escaped (a control character, or one that reorders the display).
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }
}
