import Foundation
import Glibc
import Testing
@testable import Agents
import Orchestration
import Synchronization

extension Tag {
    /// Pure logic, no processes.
    @Tag static var unit: Self
    /// Real git repositories and agent processes.
    @Tag static var process: Self
    /// Runs the `omnibase-agents` binary.
    @Tag static var cli: Self
}

/// The built `omnibase-agents` binary, beside the test bundle.
let cliPath: String = {
    var url = Bundle.main.bundleURL
    for _ in 0..<3 {
        let candidate = url.appendingPathComponent("omnibase-agents").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        url.deleteLastPathComponent()
    }
    return packageRoot + "/.build/debug/omnibase-agents"
}()

/// The package's root folder.
let packageRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A temporary folder, removed at the end of the test (with the worktrees and repositories in it).
final class TempDir: Sendable {
    let path: String
    init() {
        let template = NSTemporaryDirectory() + "omnibase-agents-test-XXXXXX"
        var bytes = Array(template.utf8CString)
        let made = mkdtemp(&bytes)!
        path = URL(fileURLWithPath: String(cString: made)).resolvingSymlinksInPath().path
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String, executable: Bool = false) -> String {
        let file = path + "/" + name
        try! FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: file, atomically: true, encoding: .utf8)
        if executable { chmod(file, 0o755) }
        return file
    }

    func read(_ name: String) -> String? { try? String(contentsOfFile: path + "/" + name, encoding: .utf8) }
}

/// What one process did.
struct CommandResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String

    func json() throws -> JSONValue { try StrictJSONParser.parse(Array(stdout.utf8)).toValue() }
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs a program through the engine's own process layer.
func runProcess(_ command: String, _ arguments: [String], in directory: String, environment extra: [String: String] = [:],
                timeout: Duration = .seconds(120)) async -> CommandResult {
    var environment = ProcessInfo.processInfo.environment
    environment["NO_COLOR"] = "1"
    environment.removeValue(forKey: "OMNIBASE_STATE_DIR")
    for (key, value) in extra { environment[key] = value }
    let token = UUID().uuidString
    let out = NSTemporaryDirectory() + "omnibase-agents-test-\(token).out"
    let err = NSTemporaryDirectory() + "omnibase-agents-test-\(token).err"
    let outcome = await LocalProcess.run(ProcessSpec(command: command, arguments: arguments, environment: environment,
                                                     workingDirectory: directory, stdoutPath: out, stderrPath: err,
                                                     timeout: timeout, killGrace: .seconds(2)))
    defer {
        unlink(out)
        unlink(err)
    }
    let status: Int32
    switch outcome.termination {
    case .exited(let code): status = code
    case .signaled(let signal): status = 128 + signal
    case .failedToStart: status = -1
    }
    return CommandResult(status: status, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}

/// Runs the CLI.
func runCLI(_ arguments: [String], in directory: String, environment: [String: String] = [:],
            timeout: Duration = .seconds(120)) async -> CommandResult {
    await runProcess(cliPath, arguments, in: directory, environment: environment, timeout: timeout)
}

/// Runs git and returns its trimmed stdout lines.
@discardableResult
func git(_ arguments: [String], in directory: String) async -> CommandResult {
    await runProcess("git", arguments, in: directory, environment: ["GIT_TERMINAL_PROMPT": "0"])
}

/// A project under test: a git repository with one commit, a project folder and a state folder.
struct Fixture: Sendable {
    let dir: TempDir
    var repo: String { dir.path + "/repo" }
    var project: String { dir.path + "/project" }
    var state: String { dir.path + "/state" }
    var marks: String { dir.path + "/marks" }

    /// Creates the repository (branch `main`, one commit with README.md) and the folders.
    static func make() async throws -> Fixture {
        let fixture = Fixture(dir: TempDir())
        try FileManager.default.createDirectory(atPath: fixture.repo, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: fixture.project, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: fixture.marks, withIntermediateDirectories: true)
        for arguments in [["init", "-q"], ["symbolic-ref", "HEAD", "refs/heads/main"], ["config", "user.name", "Test"],
                          ["config", "user.email", "test@example.invalid"]] {
            let result = await git(arguments, in: fixture.repo)
            try #require(result.status == 0, "git \(arguments): \(result.stderr)")
        }
        fixture.dir.write("repo/README.md", "# test repository\n")
        await git(["add", "-A"], in: fixture.repo)
        let commit = await git(["commit", "-q", "-m", "Initial commit"], in: fixture.repo)
        try #require(commit.status == 0, "git commit: \(commit.stderr)")
        return fixture
    }

    /// Writes `project/plan.json`.
    func plan(_ json: String) { dir.write("project/plan.json", json) }

    /// Writes an agent script into the project folder.
    func script(_ name: String, _ body: String) {
        dir.write("project/\(name)", "#!/bin/sh\nset -eu\n" + body, executable: true)
    }

    /// A configuration for an in-process orchestrator on this fixture.
    func config(autoMerge: Bool = true, maxRetries: Int? = nil, stallAfter: Int? = nil, resume: Bool = false) -> OrchestratorConfig {
        var config = OrchestratorConfig(repositoryDirectory: repo, planDirectory: project, retryInterval: .milliseconds(20),
                                        stateDirectory: state, cliPath: cliPath)
        config.autoMerge = autoMerge
        config.maxRetries = maxRetries
        config.stallAfter = stallAfter
        config.resume = resume
        return config
    }

    /// Runs the project in-process to its end.
    func run(autoMerge: Bool = true, maxRetries: Int? = nil, stallAfter: Int? = nil,
             observers: [any OrchestratorObserver] = []) async throws -> ProjectStatus {
        try await Orchestrator(config: config(autoMerge: autoMerge, maxRetries: maxRetries, stallAfter: stallAfter),
                               observers: observers).run()
    }

    /// Whether a marker file exists.
    /// Whether a marker file holds at least one whole line (a shell's `echo x > file` creates the
    /// file before it writes, so existence alone can be seen too early).
    func marked(_ name: String) -> Bool {
        ((try? String(contentsOfFile: marks + "/" + name, encoding: .utf8)) ?? "").hasSuffix("\n")
    }

    /// The lines of a marker/log file.
    func lines(_ name: String) -> [String] {
        ((try? String(contentsOfFile: marks + "/" + name, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

/// A project plan's JSON with one role per entry of `roles` (name → agent script) and the given
/// tasks and milestones (JSON object texts).
func projectPlan(roles: [(String, String)], tasks: [String], milestones: [String], extra: String = "") -> String {
    let roleText = roles.map { name, script in
        "\"\(name)\": {\"agent\": {\"command\": \"sh\", \"args\": [\"${PROJECT_DIR}/\(script)\"]}, \"max_parallel\": 2}"
    }.joined(separator: ",\n    ")
    return """
    {
      "project": "test",\(extra.isEmpty ? "" : "\n  " + extra + ",")
      "roles": {
        \(roleText)
      },
      "milestones": [\(milestones.joined(separator: ",\n    "))],
      "tasks": [
        \(tasks.joined(separator: ",\n    "))
      ]
    }
    """
}

/// Records every progress event (tests assert on the order of what happened).
final class ProgressRecorder: OrchestratorObserver {
    private let events = Mutex<[AgentProgress]>([])

    func observe(_ progress: AgentProgress) async {
        events.withLock { $0.append(progress) }
    }

    var all: [AgentProgress] { events.withLock { $0 } }
}

/// The task of a status, by id.
extension ProjectStatus {
    func task(_ id: String) -> TaskRecord? { tasks.first { $0.id == id } }
    func milestone(_ id: String) -> MilestoneRecord? { milestones.first { $0.id == id } }
}

/// Waits (polling, in the test only) until `condition` holds, or fails after `timeout`.
func eventually(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for \(what)")
    throw CancellationError()
}

/// The status of the latest session in a state folder (read-only, like `agents status`).
func readStatus(_ state: String) -> ProjectStatus? {
    try? ProjectStatus.load(stateDirectory: state)
}
