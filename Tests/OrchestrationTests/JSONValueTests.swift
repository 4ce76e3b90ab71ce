import Testing

@testable import Orchestration

@Suite struct JSONValueTests {
    /// A value with every kind, nested, shared by the golden and round-trip tests.
    static let sample: JSONValue = .object([
        "run_id": "r-1",
        "status": "failed",
        "exit_code": 1,
        "duration_sec": 7.25,
        "summary": ["total": 3, "succeeded": 1],
        "steps": [
            ["id": "fetch", "duration_sec": 0.4, "timed_out": false, "error": nil],
            ["id": "build", "tags": [], "env": [:]],
        ],
        "note": "line\nbreak \"quoted\" \u{E9}",
    ])

    @Test func compactGolden() {
        let expected = #"{"run_id":"r-1","status":"failed","exit_code":1,"duration_sec":7.25,"#
            + #""summary":{"total":3,"succeeded":1},"#
            + #""steps":[{"id":"fetch","duration_sec":0.4,"timed_out":false,"error":null},"#
            + #"{"id":"build","tags":[],"env":{}}],"note":"line\nbreak \"quoted\" é"}"#
        #expect(Self.sample.serialized() == expected)
    }

    @Test func prettyGolden() {
        let expected = """
            {
              "run_id": "r-1",
              "status": "failed",
              "exit_code": 1,
              "duration_sec": 7.25,
              "summary": {
                "total": 3,
                "succeeded": 1
              },
              "steps": [
                {
                  "id": "fetch",
                  "duration_sec": 0.4,
                  "timed_out": false,
                  "error": null
                },
                {
                  "id": "build",
                  "tags": [],
                  "env": {}
                }
              ],
              "note": "line\\nbreak \\"quoted\\" é"
            }
            """
        #expect(Self.sample.serialized(pretty: true) == expected)
    }

    @Test func scalarsAndEmptyContainers() {
        let cases: [(JSONValue, String)] = [
            (nil, "null"),
            (true, "true"),
            (false, "false"),
            (0, "0"),
            (-42, "-42"),
            (.int(.max), "9223372036854775807"),
            (.int(.min), "-9223372036854775808"),
            ("", #""""#),
            ([], "[]"),
            ([:], "{}"),
        ]
        for (value, expected) in cases {
            #expect(value.serialized() == expected)
            #expect(value.serialized(pretty: true) == expected)
        }
    }

    @Test func doubles() {
        let cases: [(Double, String)] = [
            (7.25, "7.25"),
            (0.4, "0.4"),
            (3.0, "3.0"),
            (-0.0, "-0.0"),
            (1e-7, "1e-07"),
            (1e20, "1e+20"),
            (0.1 + 0.2, "0.30000000000000004"),
            (.greatestFiniteMagnitude, "1.7976931348623157e+308"),
            (.infinity, "null"),
            (-.infinity, "null"),
            (.nan, "null"),
        ]
        for (number, expected) in cases {
            #expect(JSONValue.double(number).serialized() == expected, "\(number)")
        }
    }

    @Test func finiteDoublesAreValidJSONThatRoundTrips() throws {
        for number in [7.25, 0.4, 3.0, 1e-7, 1e20, .leastNonzeroMagnitude, 123456789.125, -2.5e-300] {
            let node = try StrictJSONParser.parse(JSONValue.double(number).serialized())
            #expect(node.numberValue?.double == number)
        }
    }

    @Test func escapesOnlyWhatRFC8259Requires() {
        let cases: [(String, String)] = [
            ("\"", #""\"""#),
            ("\\", #""\\""#),
            ("\n", #""\n""#),
            ("\t", #""\t""#),
            ("\r", #""\r""#),
            ("\u{8}", #""\b""#),
            ("\u{C}", #""\f""#),
            ("\u{0}", #""\u0000""#),
            ("\u{1}", #""\u0001""#),
            ("\u{1B}[0m", #""\u001b[0m""#),
            ("\u{1F}", #""\u001f""#),
            ("/", #""/""#),
            ("\u{7F}", "\"\u{7F}\""),
            ("é日本\u{1F600}", "\"é日本\u{1F600}\""),
            ("\u{2028}", "\"\u{2028}\""),
        ]
        for (text, expected) in cases {
            #expect(JSONValue.string(text).serialized() == expected, "\(text.debugDescription)")
        }
    }

    @Test func everyControlCharacterRoundTrips() throws {
        // NUL is left out: it is written as \u0000, which the strict parser rejects.
        let text = String(String.UnicodeScalarView((1..<0x20).compactMap(Unicode.Scalar.init)))
        let written = JSONValue.string(text).serialized()
        #expect(!written.utf8.contains { $0 < 0x20 })
        #expect(try StrictJSONParser.parse(written).stringValue == text)
    }

    @Test func keysAreEscapedToo() {
        let value: JSONValue = ["a\"b": 1, "tab\there": 2]
        #expect(value.serialized() == #"{"a\"b":1,"tab\there":2}"#)
    }

    @Test func roundTripThroughTheParser() throws {
        for pretty in [false, true] {
            let text = Self.sample.serialized(pretty: pretty)
            let parsed = try StrictJSONParser.parse(text)
            #expect(parsed.toValue() == Self.sample)
            #expect(parsed.toValue().serialized(pretty: pretty) == text)
        }
    }

    @Test func objectsKeepInsertionOrderAndCompareInOrder() {
        let ab: JSONValue = ["a": 1, "b": 2]
        let ba: JSONValue = ["b": 2, "a": 1]
        #expect(ab.serialized() == #"{"a":1,"b":2}"#)
        #expect(ba.serialized() == #"{"b":2,"a":1}"#)
        #expect(ab != ba)
        #expect(ab == .object([.init("a", .int(1)), .init("b", .int(2))]))
        #expect(JSONValue.int(1) != JSONValue.double(1))
    }

    @Test func accessors() {
        let value = Self.sample
        #expect(value["run_id"]?.stringValue == "r-1")
        #expect(value["exit_code"]?.intValue == 1)
        #expect(value["exit_code"]?.doubleValue == 1)
        #expect(value["duration_sec"]?.doubleValue == 7.25)
        #expect(value["duration_sec"]?.intValue == nil)
        #expect(value["steps"]?[0]?["timed_out"]?.boolValue == false)
        #expect(value["steps"]?[0]?["error"]?.isNull == true)
        #expect(value["steps"]?[2] == nil)
        #expect(value["steps"]?.arrayValue?.count == 2)
        #expect(value["summary"]?.objectValue?.map(\.key) == ["total", "succeeded"])
        #expect(value["missing"] == nil)
        #expect(JSONValue.int(1)["key"] == nil)
    }

    @Test func writeIntoAppendsToABuffer() {
        var buffer = Array("prefix ".utf8)
        JSONValue.array([1, "x"]).write(into: &buffer)
        buffer.append(UInt8(ascii: "\n"))
        JSONValue.bool(true).write(into: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == "prefix [1,\"x\"]\ntrue")
    }

    @Test(.timeLimit(.minutes(1)))
    func largeReportIsQuick() throws {
        let steps: [JSONValue] = (0..<10_000).map { index in
            .object([
                "id": .string("step-\(index)"),
                "status": "succeeded",
                "attempts": 1,
                "duration_sec": .double(Double(index) / 1000),
                "error": nil,
            ])
        }
        let report: JSONValue = .object(["steps": .array(steps)])
        let clock = ContinuousClock()
        var text = ""
        let elapsed = clock.measure { text = report.serialized(pretty: true) }
        #expect(elapsed < .seconds(5))
        let parsed = try StrictJSONParser.parse(text)
        #expect(parsed.objectValue?["steps"]?.arrayValue?.count == 10_000)
        #expect(parsed.toValue() == report)
    }
}
