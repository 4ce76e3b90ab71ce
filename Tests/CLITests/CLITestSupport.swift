import Foundation
import Testing
@testable import Orchestration

/// The built `omnibase-agents` binary, beside the test bundle.
let cliPath: String = {
    var url = Bundle.main.bundleURL
    for _ in 0..<3 {
        let candidate = url.appendingPathComponent("omnibase-agents").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        url.deleteLastPathComponent()
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug/omnibase-agents").path
}()

/// What one CLI invocation did.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var termination: ProcessOutcome.Termination

    /// stdout parsed as JSON.
    func json() throws -> JSONValue {
        try StrictJSONParser.parse(Array(stdout.utf8)).toValue()
    }
}

/// A temporary folder, removed at the end of the test.
final class TempDir {
    let path: String
    init() {
        let template = NSTemporaryDirectory() + "omnibase-test-XXXXXX"
        var bytes = Array(template.utf8CString)
        let made = mkdtemp(&bytes)!
        path = String(cString: made)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) -> String {
        let file = path + "/" + name
        try! FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func read(_ name: String) -> String? { try? String(contentsOfFile: path + "/" + name, encoding: .utf8) }
}

/// Runs a program in a folder with the test's environment changed by `environment` (a nil value
/// removes a variable), its output captured to files (the engine's own process layer spawns it).
func runProgram(_ command: String, _ arguments: [String], in directory: String,
                environment changes: [String: String?] = [:], timeout: Duration = .seconds(60)) async -> CLIResult {
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in changes { environment[key] = value }
    let out = directory + "/.run-\(UUID().uuidString).out"
    let err = directory + "/.run-\(UUID().uuidString).err"
    defer {
        try? FileManager.default.removeItem(atPath: out)
        try? FileManager.default.removeItem(atPath: err)
    }
    let spec = ProcessSpec(command: command, arguments: arguments, environment: environment,
                           workingDirectory: directory, stdoutPath: out, stderrPath: err, timeout: timeout,
                           killGrace: .seconds(2))
    let outcome = await LocalProcess.run(spec)
    let status: Int32
    switch outcome.termination {
    case .exited(let code): status = code
    case .signaled(let signal): status = 128 + signal
    case .failedToStart: status = -1
    }
    return CLIResult(status: status,
                     stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                     stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "",
                     termination: outcome.termination)
}

/// Runs the CLI with arguments in a folder: plain ASCII output, no state folder from the
/// environment.
func runCLI(_ arguments: [String], in directory: String, environment extra: [String: String] = [:],
            timeout: Duration = .seconds(60)) async -> CLIResult {
    var changes: [String: String?] = ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil]
    for (key, value) in extra { changes[key] = value }
    return await runProgram(cliPath, arguments, in: directory, environment: changes, timeout: timeout)
}

/// A plan file's JSON from steps given as JSON object texts.
func planJSON(_ steps: [String], globals: String = "{}", variables: String = "{}", id: String = "T") -> String {
    """
    {"plan_id": "\(id)", "version": "1", "variables": \(variables), "globals": \(globals),
     "steps": [\(steps.joined(separator: ",\n"))]}
    """
}
