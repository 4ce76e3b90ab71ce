/// `${NAME}` substitution (SPEC §1): one pass, never through a shell.
///
/// - `${NAME}` becomes the variable's value, verbatim: a value that itself contains `${OTHER}`,
///   `$(...)`, quotes or newlines is not expanded again, so it reaches the step byte-identical as
///   (part of) one argv element.
/// - `$$` is a literal `$`.
/// - Any other `$` is kept as it is (`$HOME` stays `$HOME`: there is no shell to expand it).
/// - `NAME` is `[A-Za-z_][A-Za-z0-9_]*`.
public enum VariableSubstitution {
    /// Why a string could not be substituted.
    public enum Failure: Error, Sendable, Equatable {
        /// `${NAME}` has no value.
        case unknownVariable(String)
        /// `${` with no closing `}`, or a name that is not `[A-Za-z_][A-Za-z0-9_]*`.
        case malformedReference(String)
    }

    /// Substitutes every reference in `text`.
    /// - Throws: ``Failure`` for an unknown or malformed reference.
    public static func substitute(_ text: String, variables: [String: String]) throws(Failure) -> String {
        var referenced: Set<String> = []
        return try substitute(text, variables: variables, referenced: &referenced)
    }

    /// Substitutes every reference in `text` and adds the names it referenced to `referenced`.
    /// - Throws: ``Failure`` for an unknown or malformed reference.
    public static func substitute(_ text: String, variables: [String: String],
                                  referenced: inout Set<String>) throws(Failure) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "$")) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            guard byte == UInt8(ascii: "$"), i + 1 < bytes.count else {
                out.append(byte)
                i += 1
                continue
            }
            let next = bytes[i + 1]
            if next == UInt8(ascii: "$") {
                out.append(byte)
                i += 2
            } else if next == UInt8(ascii: "{") {
                guard let close = bytes[(i + 2)...].firstIndex(of: UInt8(ascii: "}")) else {
                    throw .malformedReference(String(decoding: bytes[i...], as: UTF8.self))
                }
                let name = String(decoding: bytes[(i + 2)..<close], as: UTF8.self)
                guard isValidName(name) else { throw .malformedReference("${\(name)}") }
                referenced.insert(name)
                guard let value = variables[name] else { throw .unknownVariable(name) }
                out.append(contentsOf: value.utf8)
                i = close + 1
            } else {
                out.append(byte)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `name` is a valid variable name.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || isLetter(first) else { return false }
        return name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isLetter($0) || isDigit($0) }
    }

    private static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z") }
    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}
