import Foundation
import Testing

@testable import Orchestration

// End-to-end contract for bad input (SPEC §1, §4, §5): every malformed plan and every bad command
// line goes through the real binary and must end with the exact exit code, exactly ONE line on
// stderr that starts with `omnibase-agents: error: `, names the file and `line:column` where a
// location applies, names the JSON path where one applies, says the cause, never crashes, prints
// nothing on stdout and (for `validate`) creates nothing.

/// Marks the spot a message must point at in a plan text; removed before the file is written.
private let marker: Character = "‸"
/// Stands for a byte 0xFF (never valid UTF-8) in a plan text; replaced when the file is written.
private let invalidByte: Character = "\u{E000}"

/// How a plan file is made.
private enum PlanFile: Sendable {
    /// A text with at most one `‸` marker, written as UTF-8 (`\u{E000}` becomes the byte 0xFF).
    case text(String)
    /// The text, written as UTF-8 after a byte order mark (EF BB BF).
    case utf8WithBOM(String)
    /// The text, written as UTF-16LE with its byte order mark (FF FE).
    case utf16(String)
    /// No file at all.
    case missing
    /// A folder where the plan should be.
    case directory
    /// A named pipe (reading it would block forever).
    case fifo
    /// A symbolic link to `target`.
    case symlink(to: String)
    /// A syntactically fine plan of more than 16 MiB.
    case oversized
    /// A plan with `count` minimal, valid steps (the `steps` array is marked).
    case manySteps(Int)
    /// A plan whose `metadata.deep` nests arrays so that the whole document is `depth` levels deep.
    case nested(depth: Int)

    /// The file's bytes and the marker's `line:column` (columns count bytes, SPEC'd by the parser).
    func contents() -> (bytes: [UInt8], location: String?) {
        switch self {
        case .text(let text):
            return Self.encode(text)
        case .utf8WithBOM(let text):
            let (bytes, location) = Self.encode(text)
            return ([0xEF, 0xBB, 0xBF] + bytes, location)
        case .utf16(let text):
            let (bytes, location) = Self.encode(text)
            let units = Array(String(decoding: bytes, as: UTF8.self).utf16)
            return ([0xFF, 0xFE] + units.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }, location)
        case .missing, .directory, .fifo, .symlink:
            return ([], nil)
        case .oversized:
            // Built as bytes: a 16 MiB string is too slow to walk character by character.
            let head = #"{"plan_id": "P", "version": "1", "metadata": {"padding": ""#
            let tail = #""}, "steps": [{"id": "a", "command": "true"}]}"#
            return (Array(head.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: PlanLoader.maxFileBytes)
                    + Array(tail.utf8), nil)
        case .manySteps(let count):
            let (head, location) = Self.encode("{\n  \"plan_id\": \"P\",\n  \"version\": \"1\",\n  \"steps\": ‸[")
            var bytes = head
            bytes.reserveCapacity(count * 40)
            for index in 0..<count {
                if index > 0 { bytes += Array(",\n".utf8) }
                bytes += Array("{\"id\": \"s\(index)\", \"command\": \"true\"}".utf8)
            }
            bytes += Array("]\n}\n".utf8)
            return (bytes, location)
        case .nested(let depth):
            // The root object is level 1 and `metadata` level 2, so `depth - 2` arrays inside
            // `metadata.deep`; the marker sits on the first container past 64 levels.
            let arrays = depth - 2
            var opening = ""
            for level in 3...depth {
                if level == 65 { opening.append(marker) }
                opening += "["
            }
            return Self.encode("""
                {
                  "plan_id": "P",
                  "version": "1",
                  "metadata": {"deep": \(opening)\(String(repeating: "]", count: arrays))},
                  "steps": [{"id": "a", "command": "true"}]
                }
                """)
        }
    }

    /// UTF-8 bytes of `text` without its marker, and the marker's `line:column`.
    static func encode(_ text: String) -> (bytes: [UInt8], location: String?) {
        var bytes: [UInt8] = []
        var location: String?
        var line = 1
        var lineStart = 0
        for character in text {
            if character == marker {
                precondition(location == nil, "one marker per plan")
                location = "\(line):\(bytes.count - lineStart + 1)"
                continue
            }
            if character == invalidByte {
                bytes.append(0xFF)
                continue
            }
            bytes.append(contentsOf: Array(String(character).utf8))
            if bytes.last == UInt8(ascii: "\n") {  // "\r\n" is one Character: look at the bytes
                line += 1
                lineStart = bytes.count
            }
        }
        return (bytes, location)
    }
}

/// One malformed plan, run through both `validate` and `run`.
private struct BadPlan: Sendable, CustomTestStringConvertible {
    var name: String
    var file: PlanFile
    /// The JSON path the message must name (nil where none applies).
    var path: String?
    /// Fragments the message must contain: the cause.
    var causes: [String]
    var exitCode: Int32 = 2
    /// `--var` arguments given with the plan.
    var variables: [String] = []

    var testDescription: String { name }
    /// The plan's file name: the case name, so every message must carry its own file.
    var fileName: String { "\(name).json" }
}

/// A plan whose steps are given, for the many cases that only differ there.
private func plan(steps: String, globals: String? = nil) -> String {
    var text = "{\n  \"plan_id\": \"P\",\n  \"version\": \"1\",\n"
    if let globals { text += "  \"globals\": \(globals),\n" }
    text += "  \"steps\": [\n\(steps)\n  ]\n}\n"
    return text
}

private let badPlans: [BadPlan] = [
    // Invalid JSON.
    BadPlan(name: "trailing-comma", file: .text(plan(steps: #"    {"id": "a", "command": "true"}‸,"#)),
            path: "steps", causes: ["invalid JSON", "trailing comma"]),
    BadPlan(name: "missing-comma", file: .text("""
        {
          "plan_id": "P"
          ‸"version": "1",
          "steps": [{"id": "a", "command": "true"}]
        }
        """), path: nil, causes: ["invalid JSON", "missing ','"]),
    BadPlan(name: "comment", file: .text("""
        {
          ‸// the build plan
          "plan_id": "P",
          "version": "1",
          "steps": [{"id": "a", "command": "true"}]
        }
        """), path: nil, causes: ["invalid JSON", "comment"]),
    BadPlan(name: "single-quotes", file: .text("""
        {
          "plan_id": ‸'P',
          "version": "1",
          "steps": [{"id": "a", "command": "true"}]
        }
        """), path: "plan_id", causes: ["invalid JSON", "single quotes"]),
    BadPlan(name: "byte-order-mark", file: .utf8WithBOM("‸" + plan(steps: #"    {"id": "a", "command": "true"}"#)),
            path: nil, causes: ["invalid JSON", "byte order mark"]),
    BadPlan(name: "utf-16", file: .utf16("‸" + plan(steps: #"    {"id": "a", "command": "true"}"#)),
            path: nil, causes: ["invalid JSON", "UTF-16"]),
    BadPlan(name: "bad-utf-8", file: .text("""
        {
          "plan_id": "caf‸\u{E000}",
          "version": "1",
          "steps": [{"id": "a", "command": "true"}]
        }
        """), path: "plan_id", causes: ["invalid JSON", "UTF-8"]),
    BadPlan(name: "nul-escape", file: .text(#"""
        {
          "plan_id": "P",
          "version": "1",
          "steps": [{"id": "a", "command": "true", "args": ["x‸\u0000y"]}]
        }
        """#), path: "steps[0].args[0]", causes: ["invalid JSON", "NUL"]),
    BadPlan(name: "number-overflow", file: .text(plan(steps: #"    {"id": "a", "command": "true", "timeout_sec": ‸1e400}"#)),
            path: "steps[0].timeout_sec", causes: ["invalid JSON", "1e400", "out of range"]),
    BadPlan(name: "nesting-65-deep", file: .nested(depth: 65), path: "metadata.deep[0]",
            causes: ["invalid JSON", "nesting", "64"]),
    BadPlan(name: "nesting-100000-deep", file: .nested(depth: 100_000), path: "metadata.deep[0]",
            causes: ["invalid JSON", "nesting", "64"]),
    BadPlan(name: "empty-file", file: .text("‸"), path: nil, causes: ["invalid JSON", "empty"]),
    BadPlan(name: "whitespace-only", file: .text("  \n\n‸"), path: nil, causes: ["invalid JSON"]),
    BadPlan(name: "trailing-garbage", file: .text("""
        {"plan_id": "P", "version": "1", "steps": [{"id": "a", "command": "true"}]}
        ‸garbage
        """), path: nil, causes: ["invalid JSON", "end of the input"]),
    BadPlan(name: "two-documents", file: .text("""
        {"plan_id": "P", "version": "1", "steps": [{"id": "a", "command": "true"}]}
        ‸{"plan_id": "Q"}
        """), path: nil, causes: ["invalid JSON", "end of the input"]),
    BadPlan(name: "unterminated-string", file: .text("{\n  \"plan_id\": \"P\",\n  \"version\": \"1‸"),
            path: "version", causes: ["invalid JSON", "unterminated string", "line 3, column 14"]),
    BadPlan(name: "unterminated-object", file: .text("{\n  \"plan_id\": \"P\",\n  \"version\": \"1\"\n‸"),
            path: nil, causes: ["invalid JSON", "unterminated object"]),
    BadPlan(name: "nan-literal", file: .text(plan(steps: #"    {"id": "a", "command": "true", "timeout_sec": ‸NaN}"#)),
            path: "steps[0].timeout_sec", causes: ["invalid JSON", "NaN"]),
    BadPlan(name: "invalid-escape", file: .text(#"""
        {
          "plan_id": "P‸\x",
          "version": "1",
          "steps": [{"id": "a", "command": "true"}]
        }
        """#), path: "plan_id", causes: ["invalid JSON", "escape"]),
    BadPlan(name: "raw-tab-in-string", file: .text("{\n  \"plan_id\": \"P‸\tQ\",\n  \"version\": \"1\",\n  \"steps\": []\n}\n"),
            path: "plan_id", causes: ["invalid JSON", "control character", "escaped"]),
    BadPlan(name: "lone-surrogate", file: .text(#"""
        {
          "plan_id": "P‸\ud800",
          "version": "1",
          "steps": [{"id": "a", "command": "true"}]
        }
        """#), path: "plan_id", causes: ["invalid JSON", "surrogate"]),
    BadPlan(name: "leading-zero", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retries": ‸01}"#)),
            path: "steps[0].retries", causes: ["invalid JSON", "leading zero"]),
    BadPlan(name: "crlf-line-endings", file: .text(
        "{\r\n  \"plan_id\": \"P\",\r\n  \"version\": \"1\",\r\n  \"steps\": [{\"id\": \"a\", \"command\": \"true\", \"retries\": ‸-1}]\r\n}\r\n"),
            path: "steps[0].retries", causes: ["at least 0"]),
    BadPlan(name: "columns-count-bytes", file: .text(plan(steps: #"    {"id": "a", "name": "héllo ✓", "command": "true", "retries": ‸-1}"#)),
            path: "steps[0].retries", causes: ["at least 0"]),
    BadPlan(name: "duplicate-key", file: .text("""
        {
          "plan_id": "P",
          "version": "1",
          ‸"plan_id": "Q",
          "steps": [{"id": "a", "command": "true"}]
        }
        """), path: nil, causes: ["duplicate key \"plan_id\"", "line 2, column 3"]),
    BadPlan(name: "duplicate-step-key", file: .text(plan(steps: #"    {"id": "a", "command": "true", ‸"id": "b"}"#)),
            path: "steps[0]", causes: ["duplicate key \"id\""]),

    // Unknown keys and wrong types.
    BadPlan(name: "unknown-top-level-key", file: .text("""
        {
          "plan_id": "P",
          "version": "1",
          ‸"globels": {"max_concurrency": 2},
          "steps": [{"id": "a", "command": "true"}]
        }
        """), path: "globels", causes: ["unknown key \"globels\"", "did you mean \"globals\""]),
    BadPlan(name: "misspelt-depend-on", file: .text(plan(steps: """
            {"id": "a", "command": "true"},
            {"id": "b", "command": "true", ‸"depend_on": ["a"]}
        """)), path: "steps[1].depend_on", causes: ["unknown key \"depend_on\"", "did you mean \"depends_on\""]),
    // An empty command from a variable is refused at load, as one written out (it ran and failed).
    BadPlan(name: "command-empty-once-substituted", file: .text(plan(steps: #"    {"id": "a", "command": ‸"${C}"}"#)),
            path: "steps[0].command", causes: ["step \"a\" has an empty command once its variables are substituted"],
            variables: ["--var", "C="]),
    // A shortening, a singular, a key of another object: each gets its hint (they got none).
    BadPlan(name: "shortened-key", file: .text(plan(steps: #"    {"id": "a", "command": "true", ‸"timeout": 3}"#)),
            path: "steps[0].timeout", causes: ["unknown key \"timeout\" (did you mean \"timeout_sec\"?)"]),
    BadPlan(name: "singular-key", file: .text(plan(steps: #"    {"id": "a", "command": "true", ‸"retry": 3}"#)),
            path: "steps[0].retry", causes: ["unknown key \"retry\" (did you mean \"retries\"?)"]),
    BadPlan(name: "globals-key-in-a-step", file: .text(plan(steps: #"    {"id": "a", "command": "true", ‸"kill_grace_sec": 3}"#)),
            path: "steps[0].kill_grace_sec", causes: ["(a key of \"globals\", not of steps[0])"]),
    BadPlan(name: "step-key-in-globals", file: .text(plan(steps: #"    {"id": "a", "command": "true"}"#,
                                                          globals: #"{‸"timeout_sec": 2}"#)),
            path: "globals.timeout_sec", causes: ["(a key of a step, not of globals; did you mean \"default_timeout_sec\"?)"]),
    BadPlan(name: "unknown-globals-key", file: .text(plan(steps: #"    {"id": "a", "command": "true"}"#,
                                                          globals: #"{‸"max_parallel": 2}"#)),
            path: "globals.max_parallel", causes: ["unknown key \"max_parallel\""]),
    BadPlan(name: "plan-is-an-array", file: .text("‸[{\"id\": \"a\", \"command\": \"true\"}]"),
            path: nil, causes: ["must be an object", "array"]),
    BadPlan(name: "id-is-a-number", file: .text(plan(steps: #"    {"id": ‸1, "command": "true"}"#)),
            path: "steps[0].id", causes: ["must be a string", "number"]),
    BadPlan(name: "args-is-a-string", file: .text(plan(steps: #"    {"id": "a", "command": "ls", "args": ‸"-la"}"#)),
            path: "steps[0].args", causes: ["must be an array", "string"]),
    BadPlan(name: "arg-is-a-number", file: .text(plan(steps: #"    {"id": "a", "command": "sleep", "args": [‸1]}"#)),
            path: "steps[0].args[0]", causes: ["must be a string", "number"]),
    BadPlan(name: "retries-is-a-string", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retries": ‸"2"}"#)),
            path: "steps[0].retries", causes: ["must be an integer", "string"]),
    BadPlan(name: "critical-is-yes", file: .text(plan(steps: #"    {"id": "a", "command": "true", "critical": ‸"yes"}"#)),
            path: "steps[0].critical", causes: ["true or false", "string"]),
    BadPlan(name: "version-is-a-number", file: .text("{\n  \"plan_id\": \"P\",\n  \"version\": ‸1,\n  \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]\n}\n"),
            path: "version", causes: ["must be a string", "number"]),
    BadPlan(name: "depends-on-is-a-string", file: .text(plan(steps: """
            {"id": "a", "command": "true"},
            {"id": "b", "command": "true", "depends_on": ‸"a"}
        """)), path: "steps[1].depends_on", causes: ["must be an array", "string"]),
    BadPlan(name: "step-is-a-string", file: .text(plan(steps: #"    ‸"build""#)),
            path: "steps[0]", causes: ["must be an object", "string"]),
    BadPlan(name: "empty-command", file: .text(plan(steps: #"    {"id": "a", "command": ‸""}"#)),
            path: "steps[0].command", causes: ["empty command"]),
    BadPlan(name: "empty-plan-id", file: .text("{\n  \"plan_id\": ‸\"\",\n  \"version\": \"1\",\n  \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]\n}\n"),
            path: "plan_id", causes: ["must not be empty"]),
    BadPlan(name: "empty-version", file: .text("{\n  \"plan_id\": \"P\",\n  \"version\": ‸\"\",\n  \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]\n}\n"),
            path: "version", causes: ["must not be empty"]),
    BadPlan(name: "huge-integer-retries", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retries": ‸99999999999999999999999}"#)),
            path: "steps[0].retries", causes: ["99999999999999999999999"]),
    BadPlan(name: "steps-is-an-object", file: .text("""
        {
          "plan_id": "P",
          "version": "1",
          "steps": ‸{"a": {"command": "true"}}
        }
        """), path: "steps", causes: ["must be an array", "object"]),
    BadPlan(name: "env-value-is-a-number", file: .text(plan(steps: #"    {"id": "a", "command": "true", "env": {"N": ‸1}}"#)),
            path: "steps[0].env.N", causes: ["must be a string", "number"]),

    // Missing required fields.
    BadPlan(name: "missing-plan-id", file: .text("‸{\n  \"version\": \"1\",\n  \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]\n}\n"),
            path: nil, causes: ["missing required field \"plan_id\""]),
    BadPlan(name: "missing-version", file: .text("‸{\n  \"plan_id\": \"P\",\n  \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]\n}\n"),
            path: nil, causes: ["missing required field \"version\""]),
    BadPlan(name: "missing-steps", file: .text("‸{\n  \"plan_id\": \"P\",\n  \"version\": \"1\"\n}\n"),
            path: nil, causes: ["missing required field \"steps\""]),
    BadPlan(name: "missing-step-id", file: .text(plan(steps: """
            {"id": "a", "command": "true"},
            ‸{"command": "true", "depends_on": ["a"]}
        """)), path: "steps[1]", causes: ["missing required field \"id\""]),
    BadPlan(name: "missing-step-command", file: .text(plan(steps: #"    ‸{"id": "a", "args": ["x"]}"#)),
            path: "steps[0]", causes: ["missing required field \"command\""]),
    BadPlan(name: "empty-steps", file: .text("{\n  \"plan_id\": \"P\",\n  \"version\": \"1\",\n  \"steps\": ‸[]\n}\n"),
            path: "steps", causes: ["at least one step"]),

    // Step ids and the graph.
    BadPlan(name: "step-id-leading-dash", file: .text(plan(steps: #"    {"id": ‸"-x", "command": "true"}"#)),
            path: "steps[0].id", causes: ["\"-x\"", "must start with a letter or digit"]),
    BadPlan(name: "step-id-with-space", file: .text(plan(steps: #"    {"id": ‸"a b", "command": "true"}"#)),
            path: "steps[0].id", causes: ["\"a b\"", "letters, digits"]),
    // A line break in an id is shown escaped (it read "a b", an id the plan does not have).
    BadPlan(name: "step-id-with-newline", file: .text(plan(steps: #"    {"id": ‸"a\nb", "command": "true"}"#)),
            path: "steps[0].id", causes: [#""a\nb""#, "letters, digits"]),
    BadPlan(name: "step-id-empty", file: .text(plan(steps: #"    {"id": ‸"", "command": "true"}"#)),
            path: "steps[0].id", causes: ["step id \"\""]),
    BadPlan(name: "duplicate-step-ids", file: .text(plan(steps: """
            {"id": "build", "command": "true"},
            {"id": "test", "command": "true"},
            ‸{"id": "build", "command": "true"}
        """)), path: "steps[2]", causes: ["duplicate step id \"build\"", "steps[0]"]),
    BadPlan(name: "unknown-dependency", file: .text(plan(steps: """
            {"id": "build", "command": "true"},
            {"id": "test", "command": "true", "depends_on": [‸"biuld"]}
        """)), path: "steps[1].depends_on[0]",
            causes: ["step \"test\"", "unknown step \"biuld\"", "did you mean \"build\""]),
    BadPlan(name: "self-dependency", file: .text(plan(steps: """
            {"id": "build", "command": "true"},
            {"id": "test", "command": "true", "depends_on": ["build", ‸"test"]}
        """)), path: "steps[1].depends_on[1]", causes: ["step \"test\"", "itself"]),
    BadPlan(name: "two-cycle", file: .text(plan(steps: """
            ‸{"id": "a", "command": "true", "depends_on": ["b"]},
            {"id": "b", "command": "true", "depends_on": ["a"]}
        """)), path: nil, causes: ["cycle", "a -> b -> a"]),
    BadPlan(name: "three-cycle", file: .text(plan(steps: """
            {"id": "start", "command": "true"},
            ‸{"id": "a", "command": "true", "depends_on": ["start", "b"]},
            {"id": "b", "command": "true", "depends_on": ["c"]},
            {"id": "c", "command": "true", "depends_on": ["a"]}
        """)), path: nil, causes: ["cycle", "a -> b -> c -> a"]),

    // Numbers and enumerations.
    BadPlan(name: "negative-timeout", file: .text(plan(steps: #"    {"id": "a", "command": "true", "timeout_sec": ‸-5}"#)),
            path: "steps[0].timeout_sec", causes: ["negative"]),
    BadPlan(name: "zero-timeout", file: .text(plan(steps: #"    {"id": "a", "command": "true", "timeout_sec": ‸0}"#)),
            path: "steps[0].timeout_sec", causes: ["greater than 0"]),
    BadPlan(name: "negative-default-timeout", file: .text(plan(steps: #"    {"id": "a", "command": "true"}"#,
                                                               globals: #"{"default_timeout_sec": ‸-0.5}"#)),
            path: "globals.default_timeout_sec", causes: ["negative"]),
    BadPlan(name: "negative-retries", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retries": ‸-1}"#)),
            path: "steps[0].retries", causes: ["at least 0", "-1"]),
    BadPlan(name: "fractional-retries", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retries": ‸2.5}"#)),
            path: "steps[0].retries", causes: ["integer", "2.5"]),
    BadPlan(name: "max-concurrency-zero", file: .text(plan(steps: #"    {"id": "a", "command": "true"}"#,
                                                           globals: #"{"max_concurrency": ‸0}"#)),
            path: "globals.max_concurrency", causes: ["at least 1"]),
    BadPlan(name: "max-concurrency-fraction", file: .text(plan(steps: #"    {"id": "a", "command": "true"}"#,
                                                               globals: #"{"max_concurrency": ‸1.5}"#)),
            path: "globals.max_concurrency", causes: ["integer", "1.5"]),
    BadPlan(name: "on-failure-explode", file: .text(plan(steps: #"    {"id": "a", "command": "true", "on_failure": ‸"explode"}"#)),
            path: "steps[0].on_failure", causes: ["unknown value \"explode\"", "\"abort\"", "\"continue\""]),
    BadPlan(name: "retry-backoff-linear", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_backoff": ‸"linear"}"#)),
            path: "steps[0].retry_backoff", causes: ["unknown value \"linear\"", "\"fixed\"", "\"exponential\""]),

    // Variables.
    BadPlan(name: "unknown-variable-in-args", file: .text(plan(steps: """
            {"id": "greet", "command": "echo", "args": ["hello", ‸"${NOPE}"]}
        """)), path: "steps[0].args[1]", causes: ["unknown variable ${NOPE}", "step \"greet\"", "--var NOPE="]),
    BadPlan(name: "unknown-variable-in-env", file: .text(plan(steps: """
            {"id": "greet", "command": "echo", "env": {"WHO": ‸"${NOPE}"}}
        """)), path: "steps[0].env.WHO", causes: ["unknown variable ${NOPE}", "step \"greet\""]),
    BadPlan(name: "unknown-variable-in-cwd", file: .text(plan(steps: """
            {"id": "greet", "command": "echo", "cwd": ‸"${NOPE}/sub"}
        """)), path: "steps[0].cwd", causes: ["unknown variable ${NOPE}", "step \"greet\""]),
    BadPlan(name: "unknown-variable-in-command", file: .text(plan(steps: """
            {"id": "greet", "command": ‸"${TOOL}"}
        """)), path: "steps[0].command", causes: ["unknown variable ${TOOL}", "step \"greet\"", "did you mean ${TOLL}"],
            variables: ["--var", "TOLL=echo"]),
    BadPlan(name: "unterminated-reference", file: .text(plan(steps: """
            {"id": "greet", "command": "echo", "args": [‸"${NAME"]}
        """)), path: "steps[0].args[0]", causes: ["malformed", "${NAME", "step \"greet\""]),
    BadPlan(name: "reference-bad-name", file: .text(plan(steps: """
            {"id": "greet", "command": "echo", "args": [‸"${1X}"]}
        """)), path: "steps[0].args[0]", causes: ["malformed", "${1X}"]),
    BadPlan(name: "invalid-variable-name-in-plan", file: .text("""
        {
          "plan_id": "P",
          "version": "1",
          "variables": ‸{"1X": "v"},
          "steps": [{"id": "a", "command": "true"}]
        }
        """), path: "variables", causes: ["\"1X\"", "not a valid variable name"]),

    // Retries by cause (SPEC §11).
    BadPlan(name: "retry-on-empty", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_on": ‸{}}"#)),
            path: "steps[0].retry_on", causes: ["needs at least one of"]),
    BadPlan(name: "retry-on-unknown-key", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_on": {‸"exit_code": [1]}}"#)),
            path: "steps[0].retry_on.exit_code", causes: ["unknown key", "did you mean \"exit_codes\""]),
    BadPlan(name: "retry-on-exit-code-zero", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_on": {"exit_codes": [‸0]}}"#)),
            path: "steps[0].retry_on.exit_codes[0]", causes: ["1-255", "not 0"]),
    BadPlan(name: "retry-on-exit-code-too-big", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_on": {"exit_codes": [1, ‸256]}}"#)),
            path: "steps[0].retry_on.exit_codes[1]", causes: ["1-255", "not 256"]),
    BadPlan(name: "retry-on-exit-code-string", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_on": {"exit_codes": [‸"75"]}}"#)),
            path: "steps[0].retry_on.exit_codes[0]", causes: ["exit code", "not string"]),
    BadPlan(name: "retry-on-exit-code-twice", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_on": {"exit_codes": [75, ‸75]}}"#)),
            path: "steps[0].retry_on.exit_codes[1]", causes: ["listed twice"]),
    BadPlan(name: "retry-on-empty-match", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_on": {"stderr_matches": [‸""]}}"#)),
            path: "steps[0].retry_on.stderr_matches[0]", causes: ["must not be empty"]),
    BadPlan(name: "retry-on-timeout-string", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_on": {"timeout": ‸"yes"}}"#)),
            path: "steps[0].retry_on.timeout", causes: ["true or false"]),
    BadPlan(name: "retry-jitter-number", file: .text(plan(steps: #"    {"id": "a", "command": "true", "retry_jitter": ‸1}"#)),
            path: "steps[0].retry_jitter", causes: ["true or false"]),
    BadPlan(name: "retry-budget-negative", file: .text(plan(steps: #"    {"id": "a", "command": "true"}"#, globals: #"{"retry_budget": ‸-1}"#)),
            path: "globals.retry_budget", causes: ["at least 0"]),

    // Conditions (SPEC §11): the "if" string's place, then the column within the expression.
    BadPlan(name: "if-syntax", file: .text(plan(steps: #"    {"id": "a", "command": "true", "if": ‸"success() & always()"}"#)),
            path: "steps[0].if", causes: ["column 11 of the condition", "write && for \"and\""]),
    BadPlan(name: "if-unterminated", file: .text(plan(steps: #"    {"id": "a", "command": "true", "if": ‸"failure() || 'x == 'y'"}"#)),
            path: "steps[0].if", causes: ["column 22 of the condition", "no closing quote"]),
    BadPlan(name: "if-unknown-function", file: .text(plan(steps: #"    {"id": "a", "command": "true", "if": ‸"!cancelled()"}"#)),
            path: "steps[0].if", causes: ["column 2 of the condition", "unknown function cancelled()"]),
    BadPlan(name: "if-unknown-name", file: .text(plan(steps: #"    {"id": "a", "command": "true", "if": ‸"github.ref == 'main'"}"#)),
            path: "steps[0].if", causes: ["column 1 of the condition", "unknown name 'github.ref'"]),
    BadPlan(name: "if-string-as-test", file: .text(plan(steps: #"    {"id": "a", "command": "true", "if": ‸"success() && vars.DEPLOY"}"#)),
            path: "steps[0].if", causes: ["column 14 of the condition", "&& needs a true/false test"]),
    BadPlan(name: "if-not-a-string", file: .text(plan(steps: #"    {"id": "a", "command": "true", "if": ‸true}"#)),
            path: "steps[0].if", causes: ["must be a string"]),
    BadPlan(name: "if-unknown-variable", file: .text(plan(steps: #"    {"id": "a", "command": "true", "if": ‸"vars.DEPLOY == 'yes'"}"#)),
            path: "steps[0].if", causes: ["column 1 of the condition", "unknown variable vars.DEPLOY", "--var DEPLOY=VALUE"]),
    BadPlan(name: "if-unknown-step", file: .text(plan(steps: #"""
                {"id": "build", "command": "true"},
                {"id": "a", "command": "true", "depends_on": ["build"], "if": ‸"always() && steps.biuld.status == 'failed'"}
            """#)),
            path: "steps[1].if", causes: ["column 13 of the condition", "unknown step \"biuld\"", "did you mean \"build\""]),
    BadPlan(name: "if-not-a-dependency", file: .text(plan(steps: #"""
                {"id": "build", "command": "true"},
                {"id": "test", "command": "true"},
                {"id": "a", "command": "true", "depends_on": ["build"], "if": ‸"steps.test.outputs.ok == 'yes'"}
            """#)),
            path: "steps[2].if", causes: ["column 1 of the condition", "step \"test\" is not a dependency of step \"a\""]),
    BadPlan(name: "if-own-status", file: .text(plan(steps: #"    {"id": "a", "command": "true", "if": ‸"steps.a.status == 'failed'"}"#)),
            path: "steps[0].if", causes: ["cannot read its own status"]),

    // Env files (SPEC §11); a malformed line inside one: EnvFileCLITests.
    BadPlan(name: "env-file-missing", file: .text(plan(steps: #"    {"id": "a", "command": "true", "env_file": ‸"nope.env"}"#)),
            path: "steps[0].env_file", causes: ["cannot read the env file", "nope.env", "No such file"]),
    BadPlan(name: "env-file-folder", file: .text(plan(steps: #"    {"id": "a", "command": "true", "env_file": ‸"."}"#)),
            path: "steps[0].env_file", causes: ["not a regular file"]),
    BadPlan(name: "env-file-empty", file: .text(plan(steps: #"    {"id": "a", "command": "true", "env_file": ‸""}"#)),
            path: "steps[0].env_file", causes: ["must name a file"]),
    BadPlan(name: "env-file-number", file: .text(plan(steps: #"    {"id": "a", "command": "true"}"#, globals: #"{"env_file": ‸5}"#)),
            path: "globals.env_file", causes: ["must be a string"]),

    // Files.
    BadPlan(name: "missing-file", file: .missing, path: nil, causes: ["cannot read", "No such file"]),
    BadPlan(name: "directory", file: .directory, path: nil, causes: ["not a regular file"]),
    BadPlan(name: "fifo", file: .fifo, path: nil, causes: ["not a regular file"]),
    BadPlan(name: "link-to-dev-null", file: .symlink(to: "/dev/null"), path: nil, causes: ["not a regular file"]),
    BadPlan(name: "symlink-loop", file: .symlink(to: "symlink-loop.json"), path: nil, causes: ["cannot read"]),
    BadPlan(name: "plan ✓ with spaces", file: .text("{\n  \"plan_id\": \"P\"\n  ‸\"version\": \"1\"\n}\n"),
            path: nil, causes: ["invalid JSON", "missing ','"]),
    BadPlan(name: "over-16-mib", file: .oversized, path: nil, causes: ["16 MiB"]),
    BadPlan(name: "over-100000-steps", file: .manySteps(PlanLoader.maxSteps + 1), path: "steps",
            causes: ["at most 100000 steps", "100001"]),
]

/// The two commands that load plans.
private enum PlanCommand: String, Sendable, CaseIterable {
    case validate, run
}

/// Checks what every failing invocation must look like.
private func expectOneLineError(_ result: CLIResult, exitCode: Int32, contains fragments: [String],
                                sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    #expect(result.termination == .exited(exitCode), "exit code", sourceLocation: sourceLocation)
    #expect(result.stdout.isEmpty, "nothing on stdout, got \(result.stdout.debugDescription)", sourceLocation: sourceLocation)
    let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
    #expect(lines.count == 2 && lines.last == "",
            "exactly one line on stderr, got \(result.stderr.debugDescription)", sourceLocation: sourceLocation)
    #expect(result.stderr.hasPrefix("omnibase-agents: error: "),
            "stderr starts with the error prefix, got \(result.stderr.debugDescription)", sourceLocation: sourceLocation)
    for crash in ["Fatal error", "Stack dump", "backtrace", "Backtrace", "Illegal instruction", "Segmentation fault",
                  "Thread 0", "Current stack trace"] {
        #expect(!result.stderr.contains(crash), "no crash output (\(crash))", sourceLocation: sourceLocation)
    }
    for fragment in fragments {
        #expect(result.stderr.contains(fragment), "stderr mentions \(fragment.debugDescription), got \(result.stderr.debugDescription)",
                sourceLocation: sourceLocation)
    }
}

/// Every file and folder under `root`, relative, sorted.
private func tree(_ root: String) -> [String] {
    let names = (try? FileManager.default.subpathsOfDirectory(atPath: root)) ?? []
    return names.filter { !$0.hasPrefix(".cli-") }.sorted()
}

/// Whether the state folder holds a run.
private func recordedRuns(_ stateDirectory: String) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory + "/runs")) ?? []
}

/// A small valid plan for the command-line cases: build -> test.
private let goodPlan = """
    {
      "plan_id": "GOOD",
      "version": "1",
      "variables": {"WHO": "world"},
      "steps": [
        {"id": "build", "command": "true", "args": ["${WHO}"]},
        {"id": "test", "command": "true", "depends_on": ["build"]}
      ]
    }
    """

/// One bad command line; `PLAN` stands for a valid plan file.
private struct BadCommandLine: Sendable, CustomTestStringConvertible {
    var arguments: [String]
    var exitCode: Int32
    var causes: [String]

    init(_ arguments: [String], exit exitCode: Int32 = 2, _ causes: [String]) {
        self.arguments = arguments
        self.exitCode = exitCode
        self.causes = causes
    }

    var testDescription: String { arguments.isEmpty ? "(no arguments)" : arguments.joined(separator: " ") }
}

private let badCommandLines: [BadCommandLine] = [
    BadCommandLine([], ["command"]),
    BadCommandLine(["frobnicate"], ["unknown command", "frobnicate"]),
    BadCommandLine(["rn", "PLAN"], ["unknown command 'rn'", "did you mean 'run'"]),
    BadCommandLine(["valdate", "PLAN"], ["unknown command 'valdate'", "did you mean 'validate'"]),
    BadCommandLine(["--frobnicate"], ["--frobnicate"]),
    BadCommandLine(["run"], ["plan file"]),
    BadCommandLine(["validate"], ["plan file"]),
    BadCommandLine(["run", "PLAN", "PLAN"], ["one plan file", "2"]),
    BadCommandLine(["validate", "PLAN", "PLAN"], ["one plan file", "2"]),
    BadCommandLine(["run", "PLAN", "--max-concurency", "2"],
                   ["unknown option --max-concurency", "did you mean --max-concurrency"]),
    BadCommandLine(["validate", "PLAN", "--bogus"], ["unknown option --bogus"]),
    // An option of another command says where it belongs (it said "unknown option").
    BadCommandLine(["run", "PLAN", "--limit", "3"], ["option --limit belongs to 'runs list'"]),
    BadCommandLine(["run", "PLAN", "--listen", "x"], ["option --listen belongs to 'serve'"]),
    BadCommandLine(["runs", "list", "--max-concurrency", "2"], ["option --max-concurrency belongs to 'run'"]),
    BadCommandLine(["run", "PLAN", "--max-concurrency", "0"], ["--max-concurrency", "0"]),
    BadCommandLine(["run", "PLAN", "--max-concurrency", "-3"], ["--max-concurrency", "-3"]),
    BadCommandLine(["run", "PLAN", "--max-concurrency", "abc"], ["--max-concurrency", "\"abc\""]),
    BadCommandLine(["run", "PLAN", "--max-concurrency=1.5"], ["--max-concurrency", "1.5"]),
    BadCommandLine(["run", "PLAN", "--mode", "fast"], ["--mode", "\"fast\""]),
    BadCommandLine(["run", "PLAN", "--format", "xml"], ["--format", "\"xml\""]),
    BadCommandLine(["run", "PLAN", "--no-color=yes"], ["--no-color", "no value"]),
    BadCommandLine(["run", "PLAN", "--var", "NOEQUALS"], ["--var", "NAME=VALUE", "NOEQUALS"]),
    BadCommandLine(["validate", "PLAN", "--var", "NOEQUALS"], ["--var", "NAME=VALUE", "NOEQUALS"]),
    BadCommandLine(["run", "PLAN", "--var", "1BAD=x"], ["\"1BAD\"", "not a valid variable name"]),
    // The last of two values won without a word (SPEC section 4).
    BadCommandLine(["run", "PLAN", "--var", "V=1", "--var", "V=2"], ["--var V is given twice; give each variable once"]),
    BadCommandLine(["validate", "PLAN", "--var", "V=1", "--var", "V=1"], ["--var V is given twice"]),
    BadCommandLine(["run", "PLAN", "--var", "=x"], ["--var", "not a valid variable name"]),
    BadCommandLine(["run", "PLAN", "--var", "A-B=x"], ["\"A-B\"", "not a valid variable name"]),
    BadCommandLine(["run", "PLAN", "--from", "nosuchstep"], exit: 3, ["--from", "unknown step \"nosuchstep\""]),
    BadCommandLine(["run", "PLAN", "--to", "nosuchstep"], exit: 3, ["--to", "unknown step \"nosuchstep\""]),
    BadCommandLine(["run", "PLAN", "--from", "bulid"], exit: 3, ["unknown step \"bulid\"", "did you mean \"build\""]),
    BadCommandLine(["run", "PLAN", "--from", "test", "--to", "build"], ["select no step"]),
    BadCommandLine(["run", "PLAN", "--var"], ["--var", "needs a value"]),
    BadCommandLine(["validate", "PLAN", "--var"], ["--var", "needs a value"]),
    BadCommandLine(["run", "PLAN", "--from"], ["--from", "needs a value"]),
    BadCommandLine(["run", "PLAN", "--max-concurrency"], ["--max-concurrency", "needs a value"]),
    BadCommandLine(["run", "PLAN", "--state-dir"], ["--state-dir", "needs a value"]),
    // An option name is not the value of the option before it: the rest is not blamed instead.
    BadCommandLine(["run", "PLAN", "--executor", "--state-dir", "/tmp/x"], ["option --executor needs a value"]),
    BadCommandLine(["run", "PLAN", "--max-concurrency", "--format", "json"], ["option --max-concurrency needs a value"]),
    BadCommandLine(["run", "PLAN", "--var", "--from=build"], ["option --var needs a value"]),
    BadCommandLine(["validate", "PLAN", "--var", "--var", "A=1"], ["option --var needs a value"]),
]

@Suite struct CLIBadInputTests {
    @Test(arguments: badPlans, PlanCommand.allCases)
    fileprivate func badPlanIsRejected(_ bad: BadPlan, command: PlanCommand) async throws {
        let dir = TempDir()
        let file = dir.path + "/" + bad.fileName
        let (bytes, location) = bad.file.contents()
        switch bad.file {
        case .missing: break
        case .directory: try FileManager.default.createDirectory(atPath: file, withIntermediateDirectories: false)
        case .fifo: #expect(mkfifo(file, 0o644) == 0)
        case .symlink(let target): try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: target)
        default: try Data(bytes).write(to: URL(fileURLWithPath: file))
        }
        let before = tree(dir.path)

        var arguments = [command.rawValue, bad.fileName] + bad.variables
        if command == .run { arguments += ["--state-dir", "state", "--format", "json"] }
        let result = await runCLI(arguments, in: dir.path, environment: ["OMNIBASE_STATE_DIR": dir.path + "/env-state"])

        // The file name, then its location and JSON path where they apply, then the cause.
        var fragments = [bad.fileName + (location.map { ":\($0):" } ?? ":")]
        if let path = bad.path { fragments.append(path) }
        expectOneLineError(result, exitCode: bad.exitCode, contains: fragments + bad.causes)

        switch command {
        case .validate:
            #expect(tree(dir.path) == before, "validate creates nothing (no state folder)")
        case .run:
            #expect(recordedRuns(dir.path + "/state").isEmpty, "a rejected plan is never recorded as a run")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/env-state"))
        }
    }

    @Test(arguments: badCommandLines)
    fileprivate func badCommandLineIsRejected(_ bad: BadCommandLine) async throws {
        let dir = TempDir()
        _ = dir.write("plan.json", goodPlan)
        var arguments = bad.arguments.map { $0 == "PLAN" ? "plan.json" : $0 }
        // Every `run` gets a state folder inside the temp folder (as the first option, so that an
        // option missing its value at the end stays at the end).
        if arguments.first == "run" { arguments.insert(contentsOf: ["--state-dir", "state"], at: 1) }
        let before = tree(dir.path)
        let result = await runCLI(arguments, in: dir.path, environment: ["OMNIBASE_STATE_DIR": dir.path + "/env-state"])
        expectOneLineError(result, exitCode: bad.exitCode, contains: bad.causes)
        #expect(recordedRuns(dir.path + "/state").isEmpty, "a rejected command line starts no run")
        if arguments.first != "run" {
            #expect(tree(dir.path) == before, "a rejected command line creates nothing")
        }
    }

    /// The controls: the same machinery accepts what is valid, so the rejections above are about
    /// the defect and nothing else.
    @Test(arguments: [
        ("plan.json", [String]()),
        ("plan.json", ["--var", "WHO=you"]),
        ("nested-64.json", []),
    ])
    func validPlanPassesValidate(file: String, extra: [String]) async throws {
        let dir = TempDir()
        _ = dir.write("plan.json", goodPlan)
        let (nested, _) = PlanFile.nested(depth: 64).contents()
        try Data(nested).write(to: URL(fileURLWithPath: dir.path + "/nested-64.json"))
        let before = tree(dir.path)
        let result = await runCLI(["validate", file] + extra, in: dir.path,
                                  environment: ["OMNIBASE_STATE_DIR": dir.path + "/env-state"])
        #expect(result.termination == .exited(0), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.isEmpty)
        #expect(tree(dir.path) == before, "validate creates nothing")
    }

    @Test func validPlanRunsWithStateDirInTheTempFolder() async throws {
        let dir = TempDir()
        _ = dir.write("plan.json", goodPlan)
        let result = await runCLI(["run", "plan.json", "--state-dir", "state", "--format", "json"], in: dir.path)
        #expect(result.termination == .exited(0), "\(result.stderr)")
        #expect(try result.json()["status"]?.stringValue == "succeeded")
        #expect(recordedRuns(dir.path + "/state").count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/.state"))
    }

    /// A plan file whose read fails names the system's reason; it was "The operation could not
    /// be completed. (NSCocoaErrorDomain error 256.)" (Foundation's read), for `EMFILE` too.
    @Test func aPlanWhoseReadFailsNamesTheSystemsReason() async throws {
        let dir = TempDir()
        let result = await runCLI(["validate", "/proc/self/mem"], in: dir.path)
        #expect(result.termination == .exited(2))
        #expect(result.stderr == "omnibase-agents: error: /proc/self/mem: cannot read the plan: Input/output error\n")
    }

    @Test(arguments: [
        ["--help"], ["-h"], ["help"],
        ["run", "--help"], ["run", "-h"], ["run", "plan.json", "--help"],
        ["validate", "--help"], ["validate", "-h"],
    ])
    func helpGoesToStdoutWithExitZero(_ arguments: [String]) async throws {
        let dir = TempDir()
        _ = dir.write("plan.json", goodPlan)
        let before = tree(dir.path)
        let result = await runCLI(arguments, in: dir.path)
        #expect(result.termination == .exited(0))
        #expect(result.stderr.isEmpty)
        #expect(result.stdout.contains("Usage: omnibase-agents"))
        if arguments.count > 1 || arguments.first == "run" || arguments.first == "validate" {
            #expect(result.stdout.contains("Usage: omnibase-agents \(arguments[0])"))
        } else {
            #expect(result.stdout.contains("run") && result.stdout.contains("validate"), "the command list")
        }
        #expect(tree(dir.path) == before, "help starts nothing")
    }

    @Test func versionGoesToStdoutWithExitZero() async throws {
        let dir = TempDir()
        let result = await runCLI(["--version"], in: dir.path)
        #expect(result.termination == .exited(0))
        #expect(result.stderr.isEmpty)
        #expect(result.stdout == "omnibase-agents \(Orchestration.version)\n")
    }
}
