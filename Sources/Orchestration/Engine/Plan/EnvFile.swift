/// A dotenv file (`globals.env_file`, a step's `env_file`), parsed strictly (SPEC §11).
///
/// One entry per line: `NAME=VALUE`, optionally after `export `. NAME is
/// `[A-Za-z_][A-Za-z0-9_]*` with no space before `=`. VALUE is unquoted (up to the end of the
/// line or a ` #` comment, trailing blanks dropped), `'single-quoted'` (literal) or
/// `"double-quoted"` (with the escapes `\n`, `\"` and `\\` only); after a closing quote only
/// blanks and a `#` comment may follow. Blank lines and lines starting with `#` are skipped;
/// CRLF line ends are accepted. A name given twice, invalid UTF-8, a NUL byte or a file over
/// ``maxBytes`` is an error. Values are data: `${...}` in them is not substituted.
public struct EnvFile: Sendable, Hashable {
    /// The largest env file: 1 MiB.
    public static let maxBytes = 1024 * 1024

    /// One `NAME=VALUE` line.
    public struct Entry: Sendable, Hashable {
        /// `NAME`.
        public var name: String
        /// `VALUE`, unquoted and unescaped.
        public var value: String
        /// 1-based line number.
        public var line: Int
    }

    /// A malformed line: where (1-based line and column, in bytes) and why.
    public struct Problem: Error, Sendable, Hashable {
        /// 1-based line.
        public var line: Int
        /// 1-based column, in bytes.
        public var column: Int
        /// One sentence: what is wrong.
        public var message: String
    }

    /// The entries, in file order.
    public var entries: [Entry]

    /// Parses a file's text.
    /// - Throws: ``Problem`` for the first malformed line.
    public init(parsing bytes: [UInt8]) throws(Problem) {
        guard bytes.count <= Self.maxBytes else {
            throw Problem(line: 1, column: 1, message: "the env file is larger than 1 MiB (\(bytes.count) bytes)")
        }
        var entries: [Entry] = []
        var seen: [String: Int] = [:]
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            lineNumber += 1
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var line = Array(bytes[start..<end])
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            start = end + 1
            if let entry = try Self.parseLine(line, number: lineNumber) {
                if let first = seen[entry.name] {
                    throw Problem(line: lineNumber, column: 1, message: "\(entry.name) is set twice (first on line \(first))")
                }
                seen[entry.name] = lineNumber
                entries.append(entry)
            }
        }
        self.entries = entries
    }

    private static func isBlank(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }

    private static func parseLine(_ line: [UInt8], number: Int) throws(Problem) -> Entry? {
        func fail(_ index: Int, _ message: String) -> Problem { Problem(line: number, column: index + 1, message: message) }
        if let nul = line.firstIndex(of: 0) { throw fail(nul, "a NUL byte is not allowed") }
        var i = 0
        while i < line.count && isBlank(line[i]) { i += 1 }
        if i == line.count || line[i] == UInt8(ascii: "#") { return nil }
        let export = Array("export".utf8)
        if line.count > i + export.count, Array(line[i..<i + export.count]) == export, isBlank(line[i + export.count]) {
            i += export.count
            while i < line.count && isBlank(line[i]) { i += 1 }
        }
        let nameStart = i
        func isNameByte(_ b: UInt8, first: Bool) -> Bool {
            let letter = (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A
            return letter || b == UInt8(ascii: "_") || (!first && b >= 0x30 && b <= 0x39)
        }
        while i < line.count && isNameByte(line[i], first: i == nameStart) { i += 1 }
        guard i > nameStart else {
            throw fail(nameStart, "expected NAME=VALUE (a name of letters, digits and _, not starting with a digit)")
        }
        let name = String(decoding: line[nameStart..<i], as: UTF8.self)
        guard i < line.count, line[i] == UInt8(ascii: "=") else {
            var next = i
            while next < line.count && isBlank(line[next]) { next += 1 }
            if next > i && next < line.count && line[next] == UInt8(ascii: "=") {
                throw fail(i, "no blank is allowed between \(name) and \"=\"")
            }
            if i < line.count { throw fail(i, "\(name) must be followed by \"=\" (a name has only letters, digits and _)") }
            throw fail(i, "\(name) has no \"=\" (write \(name)=VALUE)")
        }
        i += 1
        var value: [UInt8] = []
        if i < line.count && (line[i] == UInt8(ascii: "'") || line[i] == UInt8(ascii: "\"")) {
            let quote = line[i]
            let open = i
            i += 1
            var closed = false
            while i < line.count {
                let b = line[i]
                if b == quote { closed = true; i += 1; break }
                if quote == UInt8(ascii: "\""), b == UInt8(ascii: "\\") {
                    guard i + 1 < line.count else { throw fail(i, "a \\ at the end of a double-quoted value") }
                    switch line[i + 1] {
                    case UInt8(ascii: "n"): value.append(UInt8(ascii: "\n"))
                    case UInt8(ascii: "\""): value.append(UInt8(ascii: "\""))
                    case UInt8(ascii: "\\"): value.append(UInt8(ascii: "\\"))
                    default:
                        throw fail(i, "unknown escape \\\(String(decoding: [line[i + 1]], as: UTF8.self)) (only \\n, \\\" and \\\\)")
                    }
                    i += 2
                    continue
                }
                value.append(b)
                i += 1
            }
            guard closed else {
                throw fail(open, "the \(quote == UInt8(ascii: "'") ? "single" : "double")-quoted value of \(name) is not closed on its line")
            }
            while i < line.count && isBlank(line[i]) { i += 1 }
            if i < line.count && line[i] != UInt8(ascii: "#") {
                throw fail(i, "unexpected text after the quoted value of \(name)")
            }
        } else {
            var end = line.count
            var j = i
            while j < line.count {
                if line[j] == UInt8(ascii: "#") && j > i && isBlank(line[j - 1]) { end = j; break }
                j += 1
            }
            while end > i && isBlank(line[end - 1]) { end -= 1 }
            value = Array(line[i..<end])
        }
        guard let text = String(validating: value, as: UTF8.self) else {
            throw fail(i, "the value of \(name) is not valid UTF-8")
        }
        return Entry(name: name, value: text, line: number)
    }
}
