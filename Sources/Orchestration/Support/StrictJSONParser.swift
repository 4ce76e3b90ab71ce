import Foundation

/// A JSON input that `StrictJSONParser` rejects: what is wrong, where, and in which value.
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    /// The kind of problem, for callers that branch on it; the ``message`` is for people.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The code's name.
        public var rawValue: String

        /// Creates a code from its name.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The input is not UTF-8: a byte order mark, UTF-16 or UTF-32 text, or invalid UTF-8.
        public static let encoding = Code(rawValue: "encoding")
        /// The text breaks the JSON grammar (missing or trailing commas, comments, bad literals, ...).
        public static let syntax = Code(rawValue: "syntax")
        /// A string has a raw control character, an invalid escape, `\u0000` or an unpaired surrogate.
        public static let invalidString = Code(rawValue: "invalid_string")
        /// A number is malformed (`01`, `1.`, `.5`, `+1`, hexadecimal, ...).
        public static let invalidNumber = Code(rawValue: "invalid_number")
        /// A number is too large for a `Double` (e.g. `1e400`).
        public static let numberOutOfRange = Code(rawValue: "number_out_of_range")
        /// An object has the same key twice.
        public static let duplicateKey = Code(rawValue: "duplicate_key")
        /// Arrays and objects nest deeper than ``StrictJSONParser/Limits/maxDepth``.
        public static let tooDeep = Code(rawValue: "too_deep")
        /// The input is larger than ``StrictJSONParser/Limits/maxBytes``.
        public static let tooLarge = Code(rawValue: "too_large")

        /// The code's name.
        public var description: String { rawValue }
    }

    /// The kind of problem.
    public var code: Code
    /// One sentence naming the cause, e.g. `duplicate key "id", first defined at line 3, column 5`.
    public var message: String
    /// The offending byte (for unterminated strings and containers, the end of the input).
    public var location: SourceLocation
    /// The JSON path of the value being parsed, e.g. `steps[3].depends_on[0]`; empty at the root.
    public var path: String

    /// Creates an error.
    public init(code: Code = .syntax, message: String, location: SourceLocation, path: String = "") {
        self.code = code
        self.message = message
        self.location = location
        self.path = path
    }

    /// The error as `line 4, column 7: <message> (at <path>)`, without the path part at the root.
    public var description: String {
        let located = "line \(location.line), column \(location.column): \(message)"
        return path.isEmpty ? located : "\(located) (at \(path))"
    }
}

/// A strict RFC 8259 JSON parser that reports every problem with its line, column and JSON path.
///
/// It accepts only UTF-8 without a byte order mark and rejects what lenient parsers let through:
/// duplicate keys, trailing commas, comments, `NaN`/`Infinity`, leading zeros, `\u0000`, unpaired
/// surrogate escapes, invalid UTF-8, numbers that overflow a `Double`, and input beyond
/// ``Limits``. Values come back as ``JSONNode``s that remember where they start, so later
/// validation can point at the offending token too.
///
/// Keys are compared as Swift strings, that is by canonical equivalence: `"\u00e9"` and
/// `"e\u0301"` in one object are duplicates, because any dictionary built from the object would
/// conflate them.
///
/// Columns count bytes (see ``SourceLocation``). The parser works on the bytes directly and
/// recurses at most ``Limits/maxDepth`` levels.
public struct StrictJSONParser {
    /// Bounds on the input, checked before and during parsing.
    public struct Limits: Sendable {
        /// The largest input accepted, in bytes.
        public var maxBytes: Int
        /// The deepest nesting of arrays and objects accepted (the top-level container is level 1).
        ///
        /// - Important: The parser recurses once per level, so keep this in the hundreds at most.
        public var maxDepth: Int

        /// Creates limits; the defaults are 16 MiB and 64 levels.
        public init(maxBytes: Int = 16 * 1024 * 1024, maxDepth: Int = 64) {
            self.maxBytes = maxBytes
            self.maxDepth = maxDepth
        }
    }

    /// Parses one JSON document from UTF-8 bytes.
    ///
    /// - Parameters:
    ///   - bytes: The whole document; whitespace may surround the value, nothing else.
    ///   - limits: The size and nesting limits.
    /// - Returns: The top-level value with source locations.
    /// - Throws: ``JSONParseError`` for the first problem found.
    public static func parse(_ bytes: [UInt8], limits: Limits = .init()) throws(JSONParseError) -> JSONNode {
        guard bytes.count <= limits.maxBytes else {
            throw JSONParseError(
                code: .tooLarge,
                message: "file is larger than \(describeSize(limits.maxBytes)) (\(bytes.count) bytes)",
                location: .start)
        }
        return try bytes.withUnsafeBufferPointer { (buffer) throws(JSONParseError) -> JSONNode in
            var parser = Parser(input: buffer, maxDepth: limits.maxDepth)
            return try parser.parseDocument()
        }
    }

    /// Parses one JSON document from UTF-8 data.
    ///
    /// - Throws: ``JSONParseError`` for the first problem found.
    public static func parse(_ data: Data, limits: Limits = .init()) throws(JSONParseError) -> JSONNode {
        try parse([UInt8](data), limits: limits)
    }

    /// Parses one JSON document from a string (its UTF-8 form).
    ///
    /// - Throws: ``JSONParseError`` for the first problem found.
    public static func parse(_ text: String, limits: Limits = .init()) throws(JSONParseError) -> JSONNode {
        try parse(Array(text.utf8), limits: limits)
    }

    /// A size for messages: `16 MiB`, `64 KiB` or `1000 bytes`.
    static func describeSize(_ bytes: Int) -> String {
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}

// MARK: - Path

/// One step of a JSON path: an array index or an object key.
private enum JSONPathComponent {
    case index(Int)
    case key(String)
}

extension JSONParseError {
    /// The same error, seen from the container: `component` is prepended to the path.
    ///
    /// Keys that are identifiers join with dots (`globals.env.PATH`); other keys are quoted in
    /// brackets (`env["a b"]`); indices are bracketed (`steps[3]`).
    fileprivate func inside(_ component: JSONPathComponent) -> JSONParseError {
        var error = self
        let prefix: String
        switch component {
        case .index(let index):
            prefix = "[\(index)]"
        case .key(let key):
            prefix = Self.isIdentifier(key) ? key : "[\(JSONValue.string(key).serialized())]"
        }
        let joiner = path.isEmpty || path.hasPrefix("[") ? "" : "."
        error.path = prefix + joiner + path
        return error
    }

    /// Whether `key` can be written bare in a path: ASCII letters, digits and `_`, not starting with a digit.
    fileprivate static func isIdentifier(_ key: String) -> Bool {
        guard let first = key.utf8.first, !JSONByte.isDigit(first) else { return false }
        return key.utf8.allSatisfy { JSONByte.isLetter($0) || JSONByte.isDigit($0) || $0 == JSONByte.underscore }
    }
}

// MARK: - Bytes

/// The ASCII bytes the grammar names.
private enum JSONByte {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let apostrophe = UInt8(ascii: "'")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let underscore = UInt8(ascii: "_")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")

    static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }
    static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) &- UInt8(ascii: "a") < 26 }

    /// The value of a hexadecimal digit, or `nil`.
    static func hexValue(_ byte: UInt8) -> UInt32? {
        if isDigit(byte) { return UInt32(byte - UInt8(ascii: "0")) }
        let lower = byte | 0x20
        if lower >= UInt8(ascii: "a"), lower <= UInt8(ascii: "f") { return UInt32(lower - UInt8(ascii: "a") + 10) }
        return nil
    }

    /// A byte as `0xC3`.
    static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return byte < 0x10 ? "0x0\(digits)" : "0x\(digits)"
    }

    /// A code point as `U+00E9`.
    static func codePoint(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

// MARK: - Parser

/// The parsing state over one input buffer: the cursor plus the current line's start.
private struct Parser {
    let input: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var position = 0
    var line = 1
    var lineStart = 0
    var depth = 0
    /// Reused buffer for decoding strings with escapes.
    var scratch: [UInt8] = []

    /// Objects up to this size look keys up linearly; larger ones use a dictionary.
    static let linearKeySearchLimit = 12

    init(input: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.input = input
        self.maxDepth = maxDepth
    }

    /// The location of the cursor.
    var location: SourceLocation { location(of: position) }

    /// The location of a byte on the current line (tokens never span lines).
    func location(of offset: Int) -> SourceLocation {
        SourceLocation(line: line, column: offset - lineStart + 1, offset: offset)
    }

    /// An error at `location`; containers prepend their part of the path as it propagates.
    func failure(_ code: JSONParseError.Code, _ message: String, at location: SourceLocation) -> JSONParseError {
        JSONParseError(code: code, message: message, location: location)
    }

    // MARK: Document

    /// Parses the whole input: one value with optional whitespace around it.
    mutating func parseDocument() throws(JSONParseError) -> JSONNode {
        try checkEncoding()
        guard !input.isEmpty else {
            throw failure(.syntax, "the input is empty; expected a JSON value", at: .start)
        }
        skipWhitespace()
        let root = try parseValue()
        skipWhitespace()
        guard position == input.count else {
            throw unexpected(expected: "the end of the input after the top-level value")
        }
        return root
    }

    /// Rejects a byte order mark and UTF-16/UTF-32 text, which show as NUL bytes around the first ASCII character.
    func checkEncoding() throws(JSONParseError) {
        let count = input.count
        let byte = { (index: Int) -> UInt8? in index < count ? input[index] : nil }
        if byte(0) == 0xEF, byte(1) == 0xBB, byte(2) == 0xBF {
            throw failure(
                .encoding, "the file starts with a UTF-8 byte order mark (EF BB BF); JSON must be UTF-8 without one",
                at: .start)
        }
        let encoding: String? =
            switch (byte(0), byte(1), byte(2), byte(3)) {
            case (0x00, 0x00, 0xFE, 0xFF): "UTF-32BE (byte order mark 00 00 FE FF)"
            case (0xFF, 0xFE, 0x00, 0x00): "UTF-32LE (byte order mark FF FE 00 00)"
            case (0xFE, 0xFF, _, _): "UTF-16BE (byte order mark FE FF)"
            case (0xFF, 0xFE, _, _): "UTF-16LE (byte order mark FF FE)"
            case (0x00, 0x00, 0x00, .some(let b)) where b != 0: "UTF-32BE"
            case (.some(let b), 0x00, 0x00, 0x00) where b != 0: "UTF-32LE"
            case (0x00, .some(let b), _, _) where b != 0: "UTF-16BE"
            case (.some(let b), 0x00, _, _) where b != 0: "UTF-16LE"
            default: nil
            }
        if let encoding {
            throw failure(.encoding, "the file looks like \(encoding); it must be UTF-8", at: .start)
        }
    }

    mutating func skipWhitespace() {
        while position < input.count {
            switch input[position] {
            case JSONByte.space, JSONByte.tab, JSONByte.carriageReturn:
                position += 1
            case JSONByte.newline:
                position += 1
                line += 1
                lineStart = position
            default:
                return
            }
        }
    }

    // MARK: Values

    /// Parses the value at the cursor (whitespace already skipped).
    mutating func parseValue() throws(JSONParseError) -> JSONNode {
        guard position < input.count else { throw unexpected(expected: "a JSON value") }
        let byte = input[position]
        switch byte {
        case JSONByte.quote:
            let start = location
            return JSONNode(.string(try parseString()), at: start)
        case JSONByte.openBrace:
            return try parseObject()
        case JSONByte.openBracket:
            return try parseArray()
        case JSONByte.minus, JSONByte.zero...UInt8(ascii: "9"):
            return try parseNumber()
        case JSONByte.plus:
            throw failure(.invalidNumber, "a number must not start with '+'", at: location)
        case JSONByte.dot:
            throw failure(.invalidNumber, "a number must start with a digit (write 0.5, not .5)", at: location)
        case _ where JSONByte.isLetter(byte):
            return try parseLiteral()
        default:
            throw unexpected(expected: "a JSON value")
        }
    }

    /// Parses `true`, `false` or `null`, explaining the near misses (`True`, `NaN`, bare words).
    mutating func parseLiteral() throws(JSONParseError) -> JSONNode {
        let start = location
        let end = endOfWord(from: position)
        let word = input[position..<end]
        let kind: JSONNode.Kind
        if word.elementsEqual("true".utf8) {
            kind = .bool(true)
        } else if word.elementsEqual("false".utf8) {
            kind = .bool(false)
        } else if word.elementsEqual("null".utf8) {
            kind = .null
        } else {
            throw badWord(from: position, to: end)
        }
        position = end
        return JSONNode(kind, at: start)
    }

    /// The end of the run of ASCII letters starting at `start`.
    func endOfWord(from start: Int) -> Int {
        var end = start
        while end < input.count, JSONByte.isLetter(input[end]) { end += 1 }
        return end
    }

    /// The error for a bare word where a value was expected.
    func badWord(from start: Int, to end: Int) -> JSONParseError {
        let word = String(decoding: UnsafeBufferPointer(rebasing: input[start..<min(end, start + 32)]), as: UTF8.self)
        let message: String
        switch word.lowercased() {
        case "nan", "infinity", "inf":
            return failure(.invalidNumber, "NaN and Infinity are not allowed in JSON", at: location(of: start))
        case "true", "false", "null":
            message = "invalid literal '\(word)'; JSON literals are lowercase: true, false, null"
        default:
            message = "invalid literal '\(word)'; expected true, false or null (strings must be in double quotes)"
        }
        return failure(.syntax, message, at: location(of: start))
    }

    // MARK: Containers

    /// Counts one more level of nesting for the container opening at the cursor.
    mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        guard depth <= maxDepth else {
            throw failure(.tooDeep, "nesting deeper than \(maxDepth) levels", at: location)
        }
    }

    /// Parses the array whose `[` is at the cursor.
    mutating func parseArray() throws(JSONParseError) -> JSONNode {
        let start = location
        try enterContainer()
        position += 1
        var elements: [JSONNode] = []
        skipWhitespace()
        if position < input.count, input[position] == JSONByte.closeBracket {
            position += 1
            depth -= 1
            return JSONNode(.array(elements), at: start)
        }
        var lastComma: SourceLocation?
        while true {
            skipWhitespace()
            guard position < input.count else { throw unterminated("array", "]", start: start) }
            if input[position] == JSONByte.closeBracket, let lastComma {
                throw failure(.syntax, "trailing comma before ']' is not allowed", at: lastComma)
            }
            do throws(JSONParseError) {
                elements.append(try parseValue())
            } catch {
                throw error.inside(.index(elements.count))
            }
            skipWhitespace()
            guard position < input.count else { throw unterminated("array", "]", start: start) }
            switch input[position] {
            case JSONByte.comma:
                lastComma = location
                position += 1
            case JSONByte.closeBracket:
                position += 1
                depth -= 1
                return JSONNode(.array(elements), at: start)
            default:
                throw missingSeparator(expected: "',' or ']' after an array element", between: "array elements")
            }
        }
    }

    /// Parses the object whose `{` is at the cursor, rejecting duplicate keys.
    mutating func parseObject() throws(JSONParseError) -> JSONNode {
        let start = location
        try enterContainer()
        position += 1
        var members: [JSONObject.Member] = []
        var keyIndex: [String: Int] = [:]  // Filled once the object outgrows the linear search.
        skipWhitespace()
        if position < input.count, input[position] == JSONByte.closeBrace {
            position += 1
            depth -= 1
            return JSONNode(.object(JSONObject(members: members)), at: start)
        }
        var lastComma: SourceLocation?
        while true {
            skipWhitespace()
            guard position < input.count else { throw unterminated("object", "}", start: start) }
            let keyLocation = location
            let byte = input[position]
            guard byte == JSONByte.quote else {
                if byte == JSONByte.closeBrace, let lastComma {
                    throw failure(.syntax, "trailing comma before '}' is not allowed", at: lastComma)
                }
                if JSONByte.isLetter(byte) || JSONByte.isDigit(byte) || byte == JSONByte.underscore || byte == UInt8(ascii: "$") {
                    throw failure(.syntax, "object keys must be strings in double quotes", at: keyLocation)
                }
                throw unexpected(expected: "a string key")
            }
            let key = try parseString()

            let previous: Int?
            if members.count < Self.linearKeySearchLimit {
                previous = members.firstIndex { $0.key == key }
            } else {
                if keyIndex.isEmpty {
                    for (index, member) in members.enumerated() { keyIndex[member.key] = index }
                }
                previous = keyIndex[key]
            }
            if let previous {
                let first = members[previous].keyLocation
                throw failure(
                    .duplicateKey,
                    "duplicate key \(JSONValue.string(key).serialized()), first defined at line \(first.line), column \(first.column)",
                    at: keyLocation)
            }

            skipWhitespace()
            guard position < input.count else { throw unterminated("object", "}", start: start) }
            guard input[position] == JSONByte.colon else {
                throw unexpected(expected: "':' after the key \(JSONValue.string(key).serialized())")
            }
            position += 1
            skipWhitespace()
            guard position < input.count else { throw unterminated("object", "}", start: start) }
            let value: JSONNode
            do throws(JSONParseError) {
                value = try parseValue()
            } catch {
                throw error.inside(.key(key))
            }
            if !keyIndex.isEmpty { keyIndex[key] = members.count }
            members.append(JSONObject.Member(key: key, keyLocation: keyLocation, value: value))

            skipWhitespace()
            guard position < input.count else { throw unterminated("object", "}", start: start) }
            switch input[position] {
            case JSONByte.comma:
                lastComma = location
                position += 1
            case JSONByte.closeBrace:
                position += 1
                depth -= 1
                return JSONNode(.object(JSONObject(members: members)), at: start)
            default:
                throw missingSeparator(expected: "',' or '}' after an object member", between: "object members")
            }
        }
    }

    /// The error at the end of the input for a container that was never closed.
    func unterminated(_ container: String, _ closer: String, start: SourceLocation) -> JSONParseError {
        failure(
            .syntax,
            "unterminated \(container): the input ends before '\(closer)' (the \(container) starts at line \(start.line), column \(start.column))",
            at: location)
    }

    /// The error after a container element that is followed by neither a comma nor the closer.
    func missingSeparator(expected: String, between: String) -> JSONParseError {
        let byte = input[position]
        let startsValue =
            byte == JSONByte.quote || byte == JSONByte.openBrace || byte == JSONByte.openBracket || byte == JSONByte.minus
            || JSONByte.isDigit(byte) || JSONByte.isLetter(byte)
        if startsValue {
            return failure(.syntax, "missing ',' between \(between)", at: location)
        }
        return unexpected(expected: expected)
    }

    // MARK: Numbers

    /// Parses `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`, keeping the text.
    mutating func parseNumber() throws(JSONParseError) -> JSONNode {
        let begin = position
        let start = location
        if input[position] == JSONByte.minus {
            position += 1
            if position < input.count, JSONByte.isLetter(input[position]) {
                throw badWord(from: position, to: endOfWord(from: position))
            }
            try expectDigit(after: "'-'")
        }
        if input[position] == JSONByte.zero {
            position += 1
            if position < input.count, JSONByte.isDigit(input[position]) {
                throw failure(.invalidNumber, "leading zeros are not allowed in numbers", at: location(of: position - 1))
            }
            if position < input.count, input[position] | 0x20 == UInt8(ascii: "x") {
                throw failure(.invalidNumber, "hexadecimal numbers are not allowed in JSON", at: start)
            }
        } else {
            skipDigits()
        }
        var isInteger = true
        if position < input.count, input[position] == JSONByte.dot {
            isInteger = false
            position += 1
            try expectDigit(after: "the decimal point")
            skipDigits()
        }
        if position < input.count, input[position] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            position += 1
            if position < input.count, input[position] == JSONByte.plus || input[position] == JSONByte.minus {
                position += 1
            }
            try expectDigit(after: "the exponent marker")
            skipDigits()
        }
        if position < input.count {
            let next = input[position]
            if JSONByte.isLetter(next) || JSONByte.isDigit(next) || next == JSONByte.dot || next == JSONByte.plus || next == JSONByte.minus {
                throw failure(.invalidNumber, "invalid number: unexpected '\(Character(Unicode.Scalar(next)))'", at: location)
            }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: input[begin..<position]), as: UTF8.self)
        // Integers with fewer than 309 digits are below Double.greatestFiniteMagnitude.
        if !isInteger || position - begin > 300 {
            guard let value = Double(text), value.isFinite else {
                let shown = text.count > 40 ? String(text.prefix(40)) + "..." : text
                throw failure(
                    .numberOutOfRange, "number out of range: \(shown) is too large for a 64-bit floating-point number",
                    at: start)
            }
        }
        return JSONNode(.number(JSONNumber(text: text)), at: start)
    }

    mutating func skipDigits() {
        while position < input.count, JSONByte.isDigit(input[position]) { position += 1 }
    }

    /// Requires a digit at the cursor.
    func expectDigit(after what: String) throws(JSONParseError) {
        guard position < input.count else {
            throw failure(.invalidNumber, "expected a digit after \(what) but reached the end of the input", at: location)
        }
        guard JSONByte.isDigit(input[position]) else {
            let found = try describeCharacter(at: position).get()
            throw failure(.invalidNumber, "expected a digit after \(what) but found \(found)", at: location)
        }
    }

    // MARK: Strings

    /// Parses the string whose opening quote is at the cursor and returns its decoded value.
    mutating func parseString() throws(JSONParseError) -> String {
        let start = location
        position += 1
        let contentStart = position
        while position < input.count {
            let byte = input[position]
            if byte == JSONByte.quote {
                let text = String(decoding: UnsafeBufferPointer(rebasing: input[contentStart..<position]), as: UTF8.self)
                position += 1
                return text
            } else if byte == JSONByte.backslash {
                return try parseEscapedString(contentStart: contentStart, start: start)
            } else if byte < 0x20 {
                throw rawControlCharacter(byte)
            } else if byte < 0x80 {
                position += 1
            } else {
                position += try utf8SequenceLength(at: position)
            }
        }
        throw unterminatedString(start: start)
    }

    /// Continues a string from its first backslash, decoding into ``scratch``.
    mutating func parseEscapedString(contentStart: Int, start: SourceLocation) throws(JSONParseError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: input[contentStart..<position])
        while position < input.count {
            let byte = input[position]
            if byte == JSONByte.quote {
                position += 1
                return String(decoding: scratch, as: UTF8.self)
            } else if byte == JSONByte.backslash {
                try parseEscape()
            } else if byte < 0x20 {
                throw rawControlCharacter(byte)
            } else if byte < 0x80 {
                scratch.append(byte)
                position += 1
            } else {
                let length = try utf8SequenceLength(at: position)
                scratch.append(contentsOf: input[position..<position + length])
                position += length
            }
        }
        throw unterminatedString(start: start)
    }

    /// Decodes the escape sequence whose backslash is at the cursor into ``scratch``.
    ///
    /// A backslash at the very end leaves the cursor at the end, so the caller reports the unterminated string.
    mutating func parseEscape() throws(JSONParseError) {
        let escapeStart = location
        position += 1
        guard position < input.count else { return }
        let byte = input[position]
        let decoded: UInt8
        switch byte {
        case JSONByte.quote, JSONByte.backslash, JSONByte.slash: decoded = byte
        case UInt8(ascii: "b"): decoded = 0x08
        case UInt8(ascii: "f"): decoded = 0x0C
        case UInt8(ascii: "n"): decoded = JSONByte.newline
        case UInt8(ascii: "r"): decoded = JSONByte.carriageReturn
        case UInt8(ascii: "t"): decoded = JSONByte.tab
        case UInt8(ascii: "u"):
            return try parseUnicodeEscape(escapeStart: escapeStart)
        default:
            let found = try describeCharacter(at: position).get()
            throw failure(
                .invalidString,
                "invalid escape sequence: '\\' followed by \(found) (valid escapes: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                at: escapeStart)
        }
        scratch.append(decoded)
        position += 1
    }

    /// Decodes `\uXXXX` (and a following low surrogate escape) with the cursor on the `u`.
    mutating func parseUnicodeEscape(escapeStart: SourceLocation) throws(JSONParseError) {
        let unit = try hexQuad(escapeStart: escapeStart)
        let scalarValue: UInt32
        switch unit {
        case 0:
            throw failure(.invalidString, "NUL (\\u0000) is not allowed in strings", at: escapeStart)
        case 0xD800...0xDBFF:
            let lowStart = location
            guard position + 1 < input.count, input[position] == JSONByte.backslash,
                input[position + 1] == UInt8(ascii: "u")
            else {
                throw unpairedSurrogate(unit, at: escapeStart)
            }
            position += 1
            let low = try hexQuad(escapeStart: lowStart)
            guard (0xDC00...0xDFFF).contains(low) else { throw unpairedSurrogate(unit, at: escapeStart) }
            scalarValue = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
        case 0xDC00...0xDFFF:
            throw unpairedSurrogate(unit, at: escapeStart)
        default:
            scalarValue = unit
        }
        guard let scalar = Unicode.Scalar(scalarValue) else {
            // Unreachable: surrogates were handled above and pairs decode below U+110000.
            throw unpairedSurrogate(unit, at: escapeStart)
        }
        UTF8.encode(scalar) { scratch.append($0) }
    }

    /// Reads the four hex digits after the `u` at the cursor and moves past them.
    mutating func hexQuad(escapeStart: SourceLocation) throws(JSONParseError) -> UInt32 {
        var value: UInt32 = 0
        for offset in 1...4 {
            guard position + offset < input.count, let digit = JSONByte.hexValue(input[position + offset]) else {
                throw failure(.invalidString, "invalid \\u escape: expected four hexadecimal digits after \\u", at: escapeStart)
            }
            value = value << 4 | digit
        }
        position += 5
        return value
    }

    func unpairedSurrogate(_ unit: UInt32, at location: SourceLocation) -> JSONParseError {
        let written = "\\u" + String(JSONByte.codePoint(unit).dropFirst(2))
        let rule =
            unit < 0xDC00
            ? "a high surrogate must be followed by a low-surrogate escape \\uDC00-\\uDFFF"
            : "a low surrogate must follow a high-surrogate escape \\uD800-\\uDBFF"
        return failure(.invalidString, "unpaired surrogate \(written) in string; \(rule)", at: location)
    }

    func rawControlCharacter(_ byte: UInt8) -> JSONParseError {
        let message =
            byte == 0
            ? "NUL (U+0000) is not allowed in strings"
            : "control character \(JSONByte.codePoint(UInt32(byte))) must be escaped in strings"
        return failure(.invalidString, message, at: location)
    }

    func unterminatedString(start: SourceLocation) -> JSONParseError {
        failure(
            .syntax,
            "unterminated string: the input ends before the closing '\"' (the string starts at line \(start.line), column \(start.column))",
            at: location)
    }

    // MARK: UTF-8

    /// The length of the well-formed UTF-8 sequence whose lead byte (>= 0x80) is at `offset`.
    ///
    /// Follows Unicode table 3-7: no overlong forms, no encoded surrogates, nothing above U+10FFFF.
    /// - Throws: an ``JSONParseError/Code/encoding`` error located at the lead byte.
    func utf8SequenceLength(at offset: Int) throws(JSONParseError) -> Int {
        let lead = input[offset]
        let length: Int
        var lowest: UInt8 = 0x80
        var highest: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lowest = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; highest = 0x9F
        case 0xF0: length = 4; lowest = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; highest = 0x8F
        case 0x80...0xBF: throw invalidUTF8("unexpected continuation byte \(JSONByte.hex(lead))", at: offset)
        case 0xC0, 0xC1: throw invalidUTF8("overlong encoding (byte \(JSONByte.hex(lead)))", at: offset)
        default: throw invalidUTF8("byte \(JSONByte.hex(lead)) never appears in UTF-8", at: offset)
        }
        for index in 1..<length {
            guard offset + index < input.count, input[offset + index] & 0xC0 == 0x80 else {
                throw invalidUTF8("truncated sequence starting with byte \(JSONByte.hex(lead))", at: offset)
            }
        }
        let second = input[offset + 1]
        if second < lowest {
            throw invalidUTF8("overlong encoding starting with byte \(JSONByte.hex(lead))", at: offset)
        }
        if second > highest {
            let reason = lead == 0xED ? "encoded UTF-16 surrogate" : "code point above U+10FFFF"
            throw invalidUTF8("\(reason) starting with byte \(JSONByte.hex(lead))", at: offset)
        }
        return length
    }

    func invalidUTF8(_ reason: String, at offset: Int) -> JSONParseError {
        failure(.encoding, "invalid UTF-8: \(reason); the file must be UTF-8", at: location(of: offset))
    }

    // MARK: Messages

    /// The error for the character at the cursor where `expected` should be, with hints for comments and single quotes.
    func unexpected(expected: String) -> JSONParseError {
        guard position < input.count else {
            return failure(.syntax, "expected \(expected) but reached the end of the input", at: location)
        }
        switch input[position] {
        case JSONByte.slash:
            return failure(.syntax, "comments are not allowed in JSON", at: location)
        case JSONByte.apostrophe:
            return failure(.syntax, "strings must be in double quotes, not single quotes", at: location)
        default:
            switch describeCharacter(at: position) {
            case .success(let found): return failure(.syntax, "expected \(expected) but found \(found)", at: location)
            case .failure(let encodingError): return encodingError
            }
        }
    }

    /// Names the character at `offset` for a message (`'x'`, `'é' (U+00E9)`, `control character U+0007`),
    /// or the encoding error if it is not valid UTF-8.
    func describeCharacter(at offset: Int) -> Result<String, JSONParseError> {
        let byte = input[offset]
        guard byte >= 0x80 else {
            if byte == 0 { return .success("a NUL byte") }
            if byte < 0x20 || byte == 0x7F { return .success("control character \(JSONByte.codePoint(UInt32(byte)))") }
            return .success("'\(Character(Unicode.Scalar(byte)))'")
        }
        return Result { () throws(JSONParseError) -> String in
            let length = try utf8SequenceLength(at: offset)
            let text = String(decoding: UnsafeBufferPointer(rebasing: input[offset..<offset + length]), as: UTF8.self)
            guard let scalar = text.unicodeScalars.first else { return "byte \(JSONByte.hex(byte))" }
            switch scalar.properties.generalCategory {
            case .control, .format, .spaceSeparator, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned:
                return "character \(JSONByte.codePoint(scalar.value))"
            default:
                return "'\(text)' (\(JSONByte.codePoint(scalar.value)))"
            }
        }
    }
}
