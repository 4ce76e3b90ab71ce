import Foundation
import Testing
@testable import OmnibaseSupport
@testable import Orchestration

@Suite("YAML output")
struct YAMLWriterTests {
    static let tricky: JSONValue = [
        "plain": "hello",
        "reserved": ["yes", "no", "on", "off", "true", "null", "~", "Y", ""],
        "numbers_as_text": ["1", "1.0", "0x10", "1e3", "-1", ".5", "010"],
        "syntax": ["- item", "a: b", "#comment", "x #y", "[list]", "{map}", "&anchor", "*alias", "!tag", "|", ">",
                   "'single'", "\"double\"", "%percent", "@at", "`tick`", "key:", " leading", "trailing "],
        "control": "line1\nline2\ttab\r\u{01}\u{7F}",
        "unicode": "héllo ✓ 日本",
        "numbers": [0, -5, 9_007_199_254_740_993, 0.4, 7.25, 1e-07, 3.0, 1e21],
        "flags": [true, false],
        "nothing": nil,
        "empty_object": [:],
        "empty_array": [],
        "nested": ["deep": ["deeper": [[1, 2], [], [:], ["k": "v", "k2": [3]]]]],
        "key with spaces": 1,
        "123": "numeric key",
        "true": "reserved key",
    ]

    @Test func pyYAMLReadsTheSameValueBack() async throws {
        let yaml = YAMLWriter.serialize(Self.tricky)
        let json = Self.tricky.serialized()
        let dir = NSTemporaryDirectory() + "yaml-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try yaml.write(toFile: dir + "/doc.yaml", atomically: true, encoding: .utf8)
        try json.write(toFile: dir + "/doc.json", atomically: true, encoding: .utf8)
        let script = """
        import json, sys, yaml
        a = yaml.safe_load(open(sys.argv[1], encoding='utf-8'))
        b = json.load(open(sys.argv[2], encoding='utf-8'))
        sys.exit(0 if a == b else 1)
        """
        let outcome = await LocalProcess.run(ProcessSpec(command: "python3", arguments: ["-c", script, dir + "/doc.yaml", dir + "/doc.json"],
                                                         stdoutPath: dir + "/out", stderrPath: dir + "/err"))
        let stderr = (try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? ""
        #expect(outcome.termination == .exited(0), "PyYAML read a different value:\n\(yaml)\n\(stderr)")
    }

    @Test func blockStyleGolden() {
        let value: JSONValue = ["run_id": "r-1", "steps": [["id": "a", "attempts": 1], ["id": "b", "error": nil]], "empty": []]
        #expect(YAMLWriter.serialize(value) == """
        run_id: r-1
        steps:
          - id: a
            attempts: 1
          - id: b
            error: null
        empty: []

        """)
    }

    @Test func stringsThatLookLikeOtherTypesAreQuoted() {
        #expect(YAMLWriter.string("yes") == "\"yes\"")
        #expect(YAMLWriter.string("1.5") == "\"1.5\"")
        #expect(YAMLWriter.string("build-all") == "build-all")
        #expect(YAMLWriter.string("a\nb") == "\"a\\nb\"")
    }
}
