import Orchestration

/// Small helpers for writing HTML and SVG text.
package enum HTML {
    /// Text safe in element content and in double- or single-quoted attribute values.
    package static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Controls other than tab and newline are not allowed in HTML text.
                if (scalar.value < 0x20 && scalar != "\n" && scalar != "\t") || scalar.value == 0x7F { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A coordinate with at most one decimal (`12`, `12.5`), short to keep large pages small.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let tenths = Int((value * 10).rounded())
        let whole = tenths / 10
        let fraction = abs(tenths % 10)
        if fraction == 0 { return String(whole) }
        return (tenths < 0 && whole == 0 ? "-" : "") + "\(whole).\(fraction)"
    }

    /// Shortens text to a number of characters with an ellipsis.
    static func truncate(_ text: String, to width: Int) -> String {
        guard text.count > width else { return text }
        return String(text.prefix(max(1, width - 1))) + "…"
    }
}
