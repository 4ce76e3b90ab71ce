/// Writes a ``JSONValue`` as block-style YAML 1.2 that YAML 1.1 parsers (PyYAML) read the same
/// way: strings that could be mistaken for anything else are double-quoted, floats always carry a
/// `.`, empty containers are `{}` and `[]`.
public enum YAMLWriter {
    /// The YAML document for a value (no `---` header, ends with a newline).
    public static func serialize(_ value: JSONValue) -> String {
        var out = ""
        switch value {
        case .object(let members) where !members.isEmpty:
            writeMembers(members, indent: 0, into: &out)
        case .array(let items) where !items.isEmpty:
            writeItems(items, indent: 0, into: &out)
        default:
            out += scalar(value) + "\n"
        }
        return out
    }

    private static func writeMembers(_ members: [JSONValue.Member], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for member in members {
            out += pad + string(member.key) + ":"
            writeNested(member.value, indent: indent, into: &out)
        }
    }

    private static func writeItems(_ items: [JSONValue], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for item in items {
            switch item {
            case .object(let members) where !members.isEmpty:
                // The first member goes on the dash's line, the others aligned under it.
                var first = true
                for member in members {
                    out += (first ? pad + "- " : pad + "  ") + string(member.key) + ":"
                    writeNested(member.value, indent: indent + 2, into: &out)
                    first = false
                }
            case .array(let inner) where !inner.isEmpty:
                out += pad + "-\n"
                writeItems(inner, indent: indent + 2, into: &out)
            default:
                out += pad + "- " + scalar(item) + "\n"
            }
        }
    }

    /// After `key:`: a scalar on the same line, or a nested block on the next lines.
    private static func writeNested(_ value: JSONValue, indent: Int, into out: inout String) {
        switch value {
        case .object(let members) where !members.isEmpty:
            out += "\n"
            writeMembers(members, indent: indent + 2, into: &out)
        case .array(let items) where !items.isEmpty:
            out += "\n"
            writeItems(items, indent: indent + 2, into: &out)
        default:
            out += " " + scalar(value) + "\n"
        }
    }

    private static func scalar(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .int(let number): return String(number)
        case .double(let number):
            guard number.isFinite else { return "null" }
            var text = "\(number)"
            if !text.contains(".") {
                if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                    text.insert(contentsOf: ".0", at: e)
                } else {
                    text += ".0"
                }
            }
            // YAML 1.1 wants a sign in the exponent.
            if let e = text.firstIndex(of: "e"), text.index(after: e) < text.endIndex,
               text[text.index(after: e)] != "-" && text[text.index(after: e)] != "+" {
                text.insert("+", at: text.index(after: e))
            }
            return text
        case .string(let text): return string(text)
        case .array: return "[]"
        case .object: return "{}"
        }
    }

    private static let reserved: Set<String> = ["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", ""]

    /// A string plain when it cannot be read as anything else, double-quoted otherwise.
    static func string(_ text: String) -> String {
        if isPlainSafe(text) { return text }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (scalar.value >= 0x80 && scalar.value < 0xA0)
                    || scalar.value == 0xFEFF || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static func isPlainSafe(_ text: String) -> Bool {
        guard !reserved.contains(text.lowercased()), let first = text.unicodeScalars.first else { return false }
        guard first.properties.isAlphabetic || first == "_" || first == "/" else { return false }
        return text.unicodeScalars.allSatisfy { scalar in
            scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "_-./@+".unicodeScalars.contains(scalar)
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
