import Foundation
import Testing

@testable import Orchestration

/// Parses `bytes` and returns the error, or `nil` if the input was accepted.
private func parseError(_ bytes: [UInt8], limits: StrictJSONParser.Limits = .init()) -> JSONParseError? {
    do throws(JSONParseError) {
        _ = try StrictJSONParser.parse(bytes, limits: limits)
        return nil
    } catch {
        return error
    }
}

private func parseError(_ text: String, limits: StrictJSONParser.Limits = .init()) -> JSONParseError? {
    parseError(Array(text.utf8), limits: limits)
}

/// One input the parser must reject, with where and why.
struct MalformedJSON: Sendable, CustomTestStringConvertible {
    var name: String
    var input: [UInt8]
    var line: Int
    var column: Int
    /// A fragment the message must contain.
    var cause: String
    var code: JSONParseError.Code
    var path: String

    init(_ name: String, _ input: String, _ line: Int, _ column: Int, _ cause: String, _ code: JSONParseError.Code,
         path: String = "") {
        self.init(name, Array(input.utf8), line, column, cause, code, path: path)
    }

    init(_ name: String, _ input: [UInt8], _ line: Int, _ column: Int, _ cause: String, _ code: JSONParseError.Code,
         path: String = "") {
        self.name = name
        self.input = input
        self.line = line
        self.column = column
        self.cause = cause
        self.code = code
        self.path = path
    }

    var testDescription: String { name }
}

private let malformedInputs: [MalformedJSON] = [
    // Empty input and trailing data.
    .init("empty input", "", 1, 1, "empty", .syntax),
    .init("whitespace only", "  \n  ", 2, 3, "expected a JSON value but reached the end of the input", .syntax),
    .init("trailing garbage", "{} x", 1, 4, "found 'x'", .syntax),
    .init("two top-level values", "1 2", 1, 3, "end of the input after the top-level value", .syntax),
    .init("extra closing bracket", "[1]]", 1, 4, "found ']'", .syntax),

    // Encodings other than UTF-8.
    .init("UTF-8 byte order mark", [0xEF, 0xBB, 0xBF, 0x7B, 0x7D], 1, 1, "byte order mark", .encoding),
    .init("UTF-16LE with BOM", [0xFF, 0xFE, 0x7B, 0x00, 0x7D, 0x00], 1, 1, "UTF-16LE", .encoding),
    .init("UTF-16BE with BOM", [0xFE, 0xFF, 0x00, 0x7B, 0x00, 0x7D], 1, 1, "UTF-16BE", .encoding),
    .init("UTF-16LE without BOM", [0x7B, 0x00, 0x7D, 0x00], 1, 1, "UTF-16LE", .encoding),
    .init("UTF-16BE without BOM", [0x00, 0x7B, 0x00, 0x7D], 1, 1, "UTF-16BE", .encoding),
    .init("UTF-32LE without BOM", [0x31, 0x00, 0x00, 0x00], 1, 1, "UTF-32LE", .encoding),
    .init("UTF-32BE without BOM", [0x00, 0x00, 0x00, 0x31], 1, 1, "UTF-32BE", .encoding),
    .init("UTF-32LE with BOM", [0xFF, 0xFE, 0x00, 0x00, 0x31, 0x00, 0x00, 0x00], 1, 1, "UTF-32LE", .encoding),

    // Invalid UTF-8, located at the sequence's first byte.
    .init("overlong two-byte", [0x22, 0xC0, 0xAF, 0x22], 1, 2, "overlong", .encoding),
    .init("overlong three-byte", [0x22, 0xE0, 0x80, 0xAF, 0x22], 1, 2, "overlong", .encoding),
    .init("overlong four-byte", [0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22], 1, 2, "overlong", .encoding),
    .init("encoded surrogate", [0x22, 0x61, 0xED, 0xA0, 0x80, 0x22], 1, 3, "surrogate", .encoding),
    .init("above U+10FFFF", [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 1, 2, "above U+10FFFF", .encoding),
    .init("byte F5", [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], 1, 2, "0xF5", .encoding),
    .init("byte FF in string", [0x22, 0xFF, 0x22], 1, 2, "0xFF", .encoding),
    .init("lone continuation byte", [0x22, 0x80, 0x22], 1, 2, "continuation", .encoding),
    .init("truncated before quote", [0x22, 0xE2, 0x82, 0x22], 1, 2, "truncated", .encoding),
    .init("truncated at end", [0x22, 0xE2, 0x82], 1, 2, "truncated", .encoding),
    .init("invalid UTF-8 outside strings", [0x5B, 0x0A, 0x20, 0xC3, 0x28, 0x5D], 2, 2, "invalid UTF-8", .encoding, path: "[0]"),

    // Objects.
    .init("duplicate key", "{\n  \"id\": 1,\n  \"id\": 2\n}", 3, 3,
          "duplicate key \"id\", first defined at line 2, column 3", .duplicateKey),
    .init("trailing comma in object", "{\"a\": 1,}", 1, 8, "trailing comma", .syntax),
    .init("missing comma in object", "{\"a\": 1 \"b\": 2}", 1, 9, "missing ','", .syntax),
    .init("missing colon", "{\"a\" 1}", 1, 6, "expected ':'", .syntax),
    .init("unquoted key", "{a: 1}", 1, 2, "keys must be strings in double quotes", .syntax),
    .init("single-quoted key", "{'a': 1}", 1, 2, "double quotes", .syntax),
    .init("number as key", "{1: 1}", 1, 2, "keys must be strings", .syntax),
    .init("unterminated object", "{\"a\": 1", 1, 8, "unterminated object", .syntax),
    .init("object closed by bracket", "{\"a\": 1]", 1, 8, "expected ',' or '}'", .syntax),

    // Arrays.
    .init("trailing comma in array", "[1, 2,]", 1, 6, "trailing comma", .syntax),
    .init("missing comma in array", "[1 2]", 1, 4, "missing ','", .syntax),
    .init("double comma", "[1,,2]", 1, 4, "expected a JSON value but found ','", .syntax, path: "[1]"),
    .init("leading comma", "[,1]", 1, 2, "expected a JSON value", .syntax, path: "[0]"),
    .init("unterminated array", "[1, 2", 1, 6, "unterminated array", .syntax),
    .init("unterminated nested array", "{\"a\": [1,\n", 2, 1, "unterminated array", .syntax, path: "a"),
    .init("colon in array", "[\"a\": 1]", 1, 5, "expected ',' or ']'", .syntax),

    // Comments and quoting.
    .init("line comment", "{\n  // note\n  \"a\": 1\n}", 2, 3, "comments", .syntax),
    .init("block comment", "[1 /* x */]", 1, 4, "comments", .syntax),
    .init("single-quoted string", "['a']", 1, 2, "double quotes", .syntax, path: "[0]"),

    // Literals.
    .init("NaN", "[NaN]", 1, 2, "NaN and Infinity", .invalidNumber, path: "[0]"),
    .init("Infinity", "{\"x\": Infinity}", 1, 7, "NaN and Infinity", .invalidNumber, path: "x"),
    .init("negative Infinity", "-Infinity", 1, 2, "NaN and Infinity", .invalidNumber),
    .init("capitalised literal", "True", 1, 1, "lowercase", .syntax),
    .init("truncated literal", "[nul]", 1, 2, "invalid literal 'nul'", .syntax, path: "[0]"),
    .init("bare word", "[hello]", 1, 2, "double quotes", .syntax, path: "[0]"),

    // Numbers.
    .init("leading zero", "01", 1, 1, "leading zeros", .invalidNumber),
    .init("negative leading zero", "[-012]", 1, 3, "leading zeros", .invalidNumber, path: "[0]"),
    .init("plus sign", "+1", 1, 1, "'+'", .invalidNumber),
    .init("leading dot", "[.5]", 1, 2, "start with a digit", .invalidNumber, path: "[0]"),
    .init("trailing dot", "1.", 1, 3, "after the decimal point", .invalidNumber),
    .init("dot before exponent", "1.e5", 1, 3, "after the decimal point", .invalidNumber),
    .init("empty exponent", "1e", 1, 3, "exponent", .invalidNumber),
    .init("signed empty exponent", "[1e+]", 1, 5, "exponent", .invalidNumber, path: "[0]"),
    .init("minus alone", "[-]", 1, 3, "after '-'", .invalidNumber, path: "[0]"),
    .init("hexadecimal", "0x1F", 1, 1, "hexadecimal", .invalidNumber),
    .init("two dots", "1.5.3", 1, 4, "invalid number", .invalidNumber),
    .init("overflow", "1e400", 1, 1, "number out of range", .numberOutOfRange),
    .init("negative overflow", "{\"n\": -1e400}", 1, 7, "number out of range", .numberOutOfRange, path: "n"),
    .init("huge integer literal", String(repeating: "9", count: 400), 1, 1, "number out of range", .numberOutOfRange),

    // Strings.
    .init("raw tab in string", "\"a\tb\"", 1, 3, "U+0009 must be escaped", .invalidString),
    .init("raw newline in string", "\"a\nb\"", 1, 3, "U+000A must be escaped", .invalidString),
    .init("raw NUL in string", [0x22, 0x61, 0x62, 0x00, 0x22], 1, 4, "NUL", .invalidString),
    .init("escaped NUL", "[\"ab\\u0000\"]", 1, 5, "NUL (\\u0000) is not allowed", .invalidString, path: "[0]"),
    .init("invalid escape", "\"\\x\"", 1, 2, "invalid escape sequence: '\\' followed by 'x'", .invalidString),
    .init("escaped single quote", "\"\\'\"", 1, 2, "invalid escape", .invalidString),
    .init("short unicode escape", "\"\\u12\"", 1, 2, "four hexadecimal digits", .invalidString),
    .init("non-hex unicode escape", "\"\\u12G4\"", 1, 2, "four hexadecimal digits", .invalidString),
    .init("lone high surrogate", "\"\\ud800\"", 1, 2, "unpaired surrogate \\uD800", .invalidString),
    .init("high surrogate then BMP escape", "\"x\\uD83D\\u0041\"", 1, 3, "unpaired surrogate \\uD83D", .invalidString),
    .init("high surrogate then text", "\"\\uD83Dabc\"", 1, 2, "unpaired surrogate", .invalidString),
    .init("lone low surrogate", "\"\\uDE00\"", 1, 2, "unpaired surrogate \\uDE00", .invalidString),
    .init("unterminated string", "\"abc", 1, 5, "unterminated string", .syntax),
    .init("unterminated string after escape", "\"abc\\", 1, 6, "unterminated string", .syntax),
    .init("unterminated key", "{\"ab", 1, 5, "unterminated string", .syntax),

    // Characters that are not JSON.
    .init("non-ASCII outside strings", "[é]", 1, 2, "'é' (U+00E9)", .syntax, path: "[0]"),
    .init("no-break space", "[1,\u{A0}2]", 1, 4, "U+00A0", .syntax, path: "[1]"),
    .init("form feed is not whitespace", "[1,\u{0C}2]", 1, 4, "control character U+000C", .syntax, path: "[1]"),
]

@Suite struct StrictJSONParserTests {
    @Test(arguments: malformedInputs)
    func rejectsMalformedInput(_ malformed: MalformedJSON) throws {
        let error = try #require(parseError(malformed.input), "accepted malformed input")
        #expect(error.location.line == malformed.line, "\(error)")
        #expect(error.location.column == malformed.column, "\(error)")
        #expect(error.message.contains(malformed.cause), "\(error)")
        #expect(error.code == malformed.code, "\(error)")
        #expect(error.path == malformed.path, "\(error)")
    }

    @Test func tableHasEnoughCases() {
        #expect(malformedInputs.count >= 30)
    }

    @Test func errorOffsetMatchesLineAndColumn() throws {
        let text = "{\n  \"a\": [1,\n    2,\n    tru\n  ]\n}"
        let error = try #require(parseError(text))
        #expect(error.location == SourceLocation(line: 4, column: 5, offset: 24))
        #expect(error.path == "a[2]")
        #expect(error.description == "line 4, column 5: invalid literal 'tru'; expected true, false or null (strings must be in double quotes) (at a[2])")
    }

    @Test func descriptionOmitsEmptyPath() throws {
        let error = try #require(parseError("[1,]"))
        #expect(error.description == "line 1, column 3: trailing comma before ']' is not allowed")
    }

    @Test func carriageReturnLineFeedCountsAsOneLine() throws {
        let error = try #require(parseError("{\r\n  \"a\": 1,\r\n  \"a\": 2\r\n}"))
        #expect(error.location.line == 3)
        #expect(error.location.column == 3)
    }

    // MARK: Paths

    @Test func pathNamesArrayIndicesAndKeys() throws {
        let text = """
            {"plan_id": "p", "steps": [
              {"id": "a"}, {"id": "b"}, {"id": "c"},
              {"id": "d", "depends_on": [tru]}
            ]}
            """
        let error = try #require(parseError(text))
        #expect(error.path == "steps[3].depends_on[0]")
        #expect(error.location.line == 3)
        #expect(error.location.column == 30)
    }

    @Test func pathJoinsNestedKeysWithDots() throws {
        let error = try #require(parseError(#"{"globals": {"env": {"PATH": "a\qb"}}}"#))
        #expect(error.path == "globals.env.PATH")
        #expect(error.code == .invalidString)
    }

    @Test func pathQuotesKeysThatAreNotIdentifiers() throws {
        let error = try #require(parseError(#"{"env": {"a b": x, "c": 1}}"#))
        #expect(error.path == #"env["a b"]"#)
        let rootKey = try #require(parseError(#"{"1st": {"ok": 01}}"#))
        #expect(rootKey.path == #"["1st"].ok"#)
    }

    @Test func pathOfNestedRootArrays() throws {
        let error = try #require(parseError("[0, [1, [2, x]]]"))
        #expect(error.path == "[1][1][1]")
    }

    @Test func pathOfErrorBetweenMembersIsTheContainer() throws {
        let error = try #require(parseError(#"{"steps": [{"id": "a" "command": "x"}]}"#))
        #expect(error.path == "steps[0]")
        #expect(error.message.contains("missing ','"))
    }

    // MARK: Duplicates

    @Test func duplicateKeyAtDepth() throws {
        let text = """
            {"steps": [
              {"id": "a"},
              {"id": "b", "env": {"X": "1",
                                  "X": "2"}}
            ]}
            """
        let error = try #require(parseError(text))
        #expect(error.code == .duplicateKey)
        #expect(error.path == "steps[1].env")
        #expect(error.location.line == 4)
        #expect(error.location.column == 23)
        #expect(error.message == "duplicate key \"X\", first defined at line 3, column 23")
    }

    @Test func duplicateKeyInLargeObject() throws {
        let members = (0..<100).map { "\"k\($0)\": \($0)" }.joined(separator: ", ")
        let error = try #require(parseError("{\(members), \"k42\": 0}"))
        #expect(error.code == .duplicateKey)
        #expect(error.message.hasPrefix("duplicate key \"k42\""))
        let accepted = try StrictJSONParser.parse("{\(members)}")
        #expect(accepted.objectValue?.count == 100)
    }

    @Test func sameKeyInSiblingObjectsIsFine() throws {
        let node = try StrictJSONParser.parse(#"[{"id": 1}, {"id": 2}, {"a": {"id": 3}, "id": 4}]"#)
        #expect(node.arrayValue?.count == 3)
    }

    @Test func canonicallyEquivalentKeysAreDuplicates() throws {
        // Swift compares strings by canonical equivalence, so these two would collide in any
        // dictionary built from the object: the parser rejects them up front.
        let error = try #require(parseError("{\"\u{E9}\": 1, \"e\u{301}\": 2}"))
        #expect(error.code == .duplicateKey)
    }

    // MARK: Limits

    @Test func nestingOf64LevelsIsAccepted() throws {
        let text = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        var node = try StrictJSONParser.parse(text)
        var depth = 1
        while let inner = node.arrayValue?.first {
            node = inner
            depth += 1
        }
        #expect(depth == 64)
    }

    @Test func nestingOf65LevelsIsRejected() throws {
        let text = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        let error = try #require(parseError(text))
        #expect(error.code == .tooDeep)
        #expect(error.message == "nesting deeper than 64 levels")
        #expect(error.location.column == 65)
        #expect(error.path == String(repeating: "[0]", count: 64))
    }

    @Test func objectsAndArraysBothCountTowardsDepth() throws {
        let open = String(repeating: #"{"a":["#, count: 32)
        let close = String(repeating: "]}", count: 32)
        _ = try StrictJSONParser.parse(open + close)
        let error = try #require(parseError(open + "{}" + close))
        #expect(error.code == .tooDeep)
        #expect(error.path.hasPrefix("a[0].a[0]"))
    }

    @Test func customDepthLimit() throws {
        let error = try #require(parseError("[[[1]]]", limits: .init(maxDepth: 2)))
        #expect(error.message == "nesting deeper than 2 levels")
        #expect(error.location.column == 3)
    }

    @Test func inputLargerThanLimitIsRejected() throws {
        let error = try #require(parseError("[1, 2, 3]", limits: .init(maxBytes: 8)))
        #expect(error.code == .tooLarge)
        #expect(error.message.contains("larger than 8 bytes"))
        #expect(parseError("[1, 2, 3]", limits: .init(maxBytes: 9)) == nil)
    }

    @Test func defaultSizeLimitIs16MiB() throws {
        var bytes = [UInt8](repeating: UInt8(ascii: " "), count: 16 * 1024 * 1024 + 1)
        bytes[0] = UInt8(ascii: "0")
        let error = try #require(parseError(bytes))
        #expect(error.message.hasPrefix("file is larger than 16 MiB"))
        #expect(error.location == .start)
    }

    // MARK: Accepted input

    @Test func parsesEveryKindWithLocations() throws {
        let text = """
            {
              "s": "text",
              "n": -12.5e1,
              "i": 42,
              "t": true,
              "f": false,
              "z": null,
              "a": [1, "two"],
              "o": {}
            }
            """
        let root = try StrictJSONParser.parse(text)
        let object = try #require(root.objectValue)
        #expect(root.location == .start)
        #expect(object.keys == ["s", "n", "i", "t", "f", "z", "a", "o"])
        #expect(object["s"]?.stringValue == "text")
        #expect(object["s"]?.location == SourceLocation(line: 2, column: 8, offset: 9))
        #expect(object.member(named: "s")?.keyLocation == SourceLocation(line: 2, column: 3, offset: 4))
        #expect(object["n"]?.numberValue?.double == -125)
        #expect(object["n"]?.numberValue?.int == nil)
        #expect(object["i"]?.numberValue?.int == 42)
        #expect(object["t"]?.boolValue == true)
        #expect(object["f"]?.boolValue == false)
        #expect(object["z"]?.isNull == true)
        #expect(object["a"]?.arrayValue?.map(\.typeName) == ["number", "string"])
        #expect(object["a"]?.arrayValue?.last?.location.column == 12)
        #expect(object["o"]?.objectValue?.isEmpty == true)
        #expect(object["missing"] == nil)
        #expect(object.members.map(\.value.typeName) == ["string", "number", "number", "boolean", "boolean", "null", "array", "object"])
    }

    @Test func scalarsAtTopLevelWithSurroundingWhitespace() throws {
        #expect(try StrictJSONParser.parse(" \n\t\r 7 \n").numberValue?.int == 7)
        #expect(try StrictJSONParser.parse("\"x\"").stringValue == "x")
        #expect(try StrictJSONParser.parse("null").isNull)
        #expect(try StrictJSONParser.parse("[]").arrayValue?.isEmpty == true)
    }

    @Test func decodesEscapes() throws {
        let node = try StrictJSONParser.parse(#""q\" b\\ s\/ \b\f\n\r\t \u00e9 \u20AC end""#)
        #expect(node.stringValue == "q\" b\\ s/ \u{8}\u{C}\n\r\t \u{E9} \u{20AC} end")
    }

    @Test func decodesSurrogatePairs() throws {
        let node = try StrictJSONParser.parse(#"["\ud83d\ude00", "a\uD834\uDD1Eb"]"#)
        #expect(node.toValue() == ["\u{1F600}", "a\u{1D11E}b"])
    }

    @Test func keepsValidMultibyteUTF8() throws {
        let text = "{\"clé\": \"日本 \u{1F600} \u{10FFFF}\"}"
        let node = try StrictJSONParser.parse(text)
        #expect(node.objectValue?["clé"]?.stringValue == "日本 \u{1F600} \u{10FFFF}")
    }

    @Test func numberAccessors() throws {
        let cases: [(text: String, int: Int?, double: Double)] = [
            ("0", 0, 0),
            ("-0", 0, -0.0),
            ("123", 123, 123),
            ("-9223372036854775808", Int.min, -9223372036854775808),
            ("9223372036854775808", nil, 9223372036854775808),
            ("3.0", nil, 3),
            ("1e3", nil, 1000),
            ("2.5E-3", nil, 0.0025),
            ("1e-400", nil, 0),
            ("1.7976931348623157e308", nil, .greatestFiniteMagnitude),
        ]
        for (text, int, double) in cases {
            let node = try StrictJSONParser.parse(text)
            let number = try #require(node.numberValue)
            #expect(number.text == text)
            #expect(number.int == int, "\(text)")
            #expect(number.double == double, "\(text)")
        }
    }

    @Test func toValueDropsLocationsAndKeepsOrder() throws {
        let node = try StrictJSONParser.parse(#"{"b": [1, 2.5, "x"], "a": {"n": null, "t": true}}"#)
        let expected: JSONValue = ["b": [1, 2.5, "x"], "a": ["n": nil, "t": true]]
        #expect(node.toValue() == expected)
    }

    @Test func dataAndStringOverloads() throws {
        let text = #"{"k": [true]}"#
        let fromData = try StrictJSONParser.parse(Data(text.utf8))
        let fromString = try StrictJSONParser.parse(text)
        #expect(fromData.toValue() == fromString.toValue())
    }

    @Test(.timeLimit(.minutes(1)))
    func parsesLargeInput() throws {
        let count = 100_000
        var text = "[\n"
        for index in 0..<count {
            text += #"  {"id": "step-\#(index)", "n": \#(index), "ok": true, "deps": ["a", "b"]}"#
            text += index == count - 1 ? "\n" : ",\n"
        }
        text += "]"
        let clock = ContinuousClock()
        var root: JSONNode?
        let elapsed = try clock.measure { root = try StrictJSONParser.parse(text) }
        let elements = try #require(root?.arrayValue)
        #expect(elements.count == count)
        let last = try #require(elements.last?.objectValue)
        #expect(last["id"]?.stringValue == "step-99999")
        #expect(last["n"]?.numberValue?.int == 99_999)
        #expect(elements.last?.location.line == count + 1)
        #expect(elements.last?.location.column == 3)
        // Generous even for debug builds; release parses this in a few tens of milliseconds.
        #expect(elapsed < .seconds(10))
    }
}
