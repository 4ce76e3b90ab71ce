import Foundation
import Testing
@testable import Orchestration

/// A registry component as JSON text: `sh -c SCRIPT`, with extra members.
func componentJSON(_ name: String, type: String = "validator", lifecycle: String = "stable", tags: [String] = ["pre-commit"],
                   script: String = "true", deps: [String] = [], extra: String = "") -> String {
    let value: JSONValue = .object([
        "name": .string(name), "type": .string(type), "lifecycle": .string(lifecycle),
        "tags": .array(tags.map { .string($0) }), "command": "sh", "args": ["-c", .string(script)],
        "depends_on": .array(deps.map { .string($0) }),
    ])
    var text = value.serialized()
    if !extra.isEmpty { text = String(text.dropLast()) + ", " + extra + "}" }
    return text
}

/// A registry file's JSON from component texts and extra top-level members.
func registryJSON(_ components: [String], extra: String = "") -> String {
    "{\"components\": [\n" + components.joined(separator: ",\n") + "\n]" + (extra.isEmpty ? "" : ",\n" + extra) + "\n}\n"
}

/// A script that appends a word to `log` (in the registry's folder) and exits with `status`.
func logScript(_ word: String, status: Int = 0) -> String {
    "echo \(word) >> log; exit \(status)"
}

/// Runs `orch` in `dir` with a state folder of its own and NO_COLOR.
func orch(_ arguments: [String], in dir: TempDir, json: Bool = true) async -> CLIResult {
    await runCLI(["orch"] + arguments + (json ? ["--format", "json"] : []) + ["--state-dir", dir.path + "/.state"], in: dir.path)
}

/// Runs git in a folder with a fixed identity; returns its exit status.
@discardableResult
func git(_ arguments: [String], in directory: String) async -> Int32 {
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                         "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": directory] {
        environment[key] = value
    }
    let spec = ProcessSpec(command: "git", arguments: arguments, environment: environment, workingDirectory: directory,
                           stdoutPath: "/dev/null", stderrPath: "/dev/null", timeout: .seconds(30))
    let outcome = await LocalProcess.run(spec)
    if case .exited(let code) = outcome.termination { return code }
    return -1
}

extension TempDir {
    /// Writes a file in the folder (``write(_:_:)`` without its result).
    func put(_ name: String, _ text: String) {
        _ = write(name, text)
    }
}

extension JSONValue {
    /// The ids of a report's steps, in order.
    var stepIDs: [String] { self["steps"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [] }
}
