import Foundation
import Testing
@testable import Orchestration

/// `plans/safe_merge.json` end to end: real `git` repositories in a temporary folder (a bare
/// `origin` and a clone `work` with `main` and `feature`), the real CLI, and the repositories'
/// state afterwards.
@Suite(.serialized)
struct SafeMergePlanTests {
    static let planPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("plans/safe_merge.json").path

    @Test("a clean merge is pushed as a --no-ff merge commit and the lock is released", .timeLimit(.minutes(2)))
    func cleanMerge() async throws {
        let repos = try await GitRepos(conflicting: false)
        let mainBefore = try await repos.git("rev-parse", "main")
        let featureTip = try await repos.git("rev-parse", "feature")

        let result = await repos.runPlan()
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "succeeded")
        let steps = report["steps"]?.arrayValue ?? []
        #expect(steps.count == 8)
        for step in steps {
            #expect(step["status"]?.stringValue == "succeeded", "step \(step["id"]?.stringValue ?? "?")")
        }

        // The origin's main is a merge commit: first parent the old main, second the feature tip.
        let parents = try await repos.git(in: repos.origin, "rev-list", "--parents", "-n", "1", "main")
            .split(separator: " ").map(String.init)
        #expect(parents.count == 3, "not a two-parent merge: \(parents)")
        #expect(parents.dropFirst().first == mainBefore)
        #expect(parents.last == featureTip)
        #expect(try await repos.git("rev-parse", "main") == parents.first)
        #expect(!repos.exists(repos.lock), "the lock was not released")
        #expect(try await repos.git("status", "--porcelain").isEmpty)
        #expect(try await repos.git("branch", "--show-current") == "main")
    }

    @Test("a conflict aborts the merge, names the file, changes nothing and releases the lock", .timeLimit(.minutes(2)))
    func conflict() async throws {
        let repos = try await GitRepos(conflicting: true)
        let originBefore = try await repos.git(in: repos.origin, "rev-parse", "main")
        let mainBefore = try await repos.git("rev-parse", "main")

        let result = await repos.runPlan()
        #expect(result.status == 1, "\(result.stderr)\n\(result.stdout)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "failed")
        #expect(report.step("merge")?["status"]?.stringValue == "failed")
        for later in ["check", "push"] {
            #expect(report.step(later)?["status"]?.stringValue == "succeeded", "\(later) should do nothing and succeed")
        }
        #expect(report.step("release")?["status"]?.stringValue == "succeeded")

        #expect(try await repos.git(in: repos.origin, "rev-parse", "main") == originBefore)
        #expect(try await repos.git("rev-parse", "main") == mainBefore)
        #expect(!repos.exists(repos.work + "/.git/MERGE_HEAD"), "a merge is still in progress")
        #expect(try await repos.git("status", "--porcelain").isEmpty)
        #expect(!repos.exists(repos.lock), "the lock was not released")

        let runID = try #require(report["run_id"]?.stringValue)
        let log = try #require(repos.read(repos.state + "/runs/\(runID)/logs/merge.1.err"))
        #expect(log.contains("file.txt"), "the merge step's stderr does not name the conflicting file: \(log)")
        #expect(log.contains("conflict"))
    }

    @Test("failing checks undo the merge: main back where it was, nothing pushed", .timeLimit(.minutes(2)))
    func failingChecks() async throws {
        let repos = try await GitRepos(conflicting: false)
        let originBefore = try await repos.git(in: repos.origin, "rev-parse", "main")
        let mainBefore = try await repos.git("rev-parse", "main")

        let result = await repos.runPlan(["CHECK": "echo running the checks; exit 1"])
        #expect(result.status == 1, "\(result.stderr)\n\(result.stdout)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "failed")
        #expect(report.step("merge")?["status"]?.stringValue == "succeeded")
        #expect(report.step("check")?["status"]?.stringValue == "failed")
        #expect(report.step("finish")?["status"]?.stringValue == "succeeded")
        #expect(report.step("release")?["status"]?.stringValue == "succeeded")

        #expect(try await repos.git("rev-parse", "main") == mainBefore, "the merge was not undone")
        #expect(try await repos.git(in: repos.origin, "rev-parse", "main") == originBefore)
        #expect(try await repos.git("status", "--porcelain").isEmpty)
        #expect(!repos.exists(repos.lock), "the lock was not released")
        let runID = try #require(report["run_id"]?.stringValue)
        #expect(repos.read(repos.state + "/runs/\(runID)/logs/check.1.out")?.contains("running the checks") == true)
    }

    @Test("a lock held by someone else aborts the run and is left alone", .timeLimit(.minutes(2)))
    func heldLock() async throws {
        let repos = try await GitRepos(conflicting: false)
        let originBefore = try await repos.git(in: repos.origin, "rev-parse", "main")
        let mainBefore = try await repos.git("rev-parse", "main")
        try FileManager.default.createDirectory(atPath: repos.lock, withIntermediateDirectories: false)
        try "someone-else\n".write(toFile: repos.lock + "/owner", atomically: true, encoding: .utf8)

        let result = await repos.runPlan()
        #expect(result.status == 1, "\(result.stderr)\n\(result.stdout)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "failed")
        let lock = report.step("lock")
        #expect(lock?["status"]?.stringValue == "failed")
        #expect((lock?["attempts"]?.intValue ?? 0) > 1, "taking the lock is retried")
        for step in report["steps"]?.arrayValue ?? [] where step["id"]?.stringValue != "lock" {
            #expect(step["status"]?.stringValue == "cancelled", "step \(step["id"]?.stringValue ?? "?")")
        }

        #expect(repos.exists(repos.lock), "someone else's lock was removed")
        #expect(repos.read(repos.lock + "/owner") == "someone-else\n")
        #expect(try await repos.git("rev-parse", "main") == mainBefore)
        #expect(try await repos.git(in: repos.origin, "rev-parse", "main") == originBefore)
    }

    @Test("a dirty work tree stops the merge before anything is touched", .timeLimit(.minutes(2)))
    func dirtyWorkTree() async throws {
        let repos = try await GitRepos(conflicting: false)
        let mainBefore = try await repos.git("rev-parse", "main")
        _ = repos.dir.write("work/file.txt", "edited but not committed\n")

        let result = await repos.runPlan()
        #expect(result.status == 1, "\(result.stderr)\n\(result.stdout)")
        let report = try result.json()
        #expect(report.step("preflight")?["status"]?.stringValue == "failed")
        #expect(try await repos.git("rev-parse", "main") == mainBefore)
        #expect(try await repos.git("status", "--porcelain") == " M file.txt")
        #expect(!repos.exists(repos.lock), "the lock was not released")
    }

    @Test("variable values reach git as data, never as shell code", .timeLimit(.minutes(2)))
    func valuesAreNotShellCode() async throws {
        let repos = try await GitRepos(conflicting: false)
        let originBefore = try await repos.git(in: repos.origin, "rev-parse", "main")
        let marker = repos.dir.path + "/injected"

        let result = await repos.runPlan(["SOURCE": "feature\"; touch '\(marker)'; echo \"$(touch '\(marker)')"])
        #expect(result.status == 1, "\(result.stderr)\n\(result.stdout)")
        let report = try result.json()
        #expect(report.step("preflight")?["status"]?.stringValue == "failed")
        #expect(!repos.exists(marker), "a variable's value was run by a shell")
        #expect(try await repos.git(in: repos.origin, "rev-parse", "main") == originBefore)
        #expect(!repos.exists(repos.lock), "the lock was not released")
    }
}

extension JSONValue {
    /// The report's entry for one step.
    fileprivate func step(_ id: String) -> JSONValue? {
        self["steps"]?.arrayValue?.first { $0["id"]?.stringValue == id }
    }
}

/// A bare `origin` and its clone `work`: `main` with `file.txt` (pushed), `feature` with one more
/// commit. With `conflicting`, `feature` and `main` change the same line of `file.txt` (and that
/// `main` is pushed); otherwise `feature` adds a new file.
private struct GitRepos {
    let dir = TempDir()
    var origin: String { dir.path + "/origin.git" }
    var work: String { dir.path + "/work" }
    var state: String { dir.path + "/state" }
    var lock: String { work + "/.git/omnibase-safe-merge.lock" }

    /// The environment for git and the CLI: no global or system git configuration.
    static let environment: [String: String] = {
        var environment = ProcessInfo.processInfo.environment
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"] {
            environment.removeValue(forKey: name)
        }
        environment["GIT_CONFIG_GLOBAL"] = "/dev/null"
        environment["GIT_CONFIG_NOSYSTEM"] = "1"
        environment["GIT_TERMINAL_PROMPT"] = "0"
        return environment
    }()

    init(conflicting: Bool) async throws {
        try await git(in: dir.path, "-c", "init.defaultBranch=main", "init", "-q", "--bare", origin)
        try await git(in: dir.path, "-c", "init.defaultBranch=main", "init", "-q", work)
        try await git("config", "user.name", "Safe Merge Test")
        try await git("config", "user.email", "safe-merge@example.com")
        try await git("config", "commit.gpgsign", "false")
        _ = dir.write("work/file.txt", "one\ntwo\nthree\n")
        try await git("add", "file.txt")
        try await git("commit", "-q", "-m", "base")
        try await git("remote", "add", "origin", origin)
        try await git("push", "-q", "origin", "main")

        try await git("switch", "-q", "-c", "feature")
        if conflicting {
            _ = dir.write("work/file.txt", "one\ntwo from feature\nthree\n")
            try await git("commit", "-q", "-a", "-m", "feature changes line two")
        } else {
            _ = dir.write("work/feature.txt", "new\n")
            try await git("add", "feature.txt")
            try await git("commit", "-q", "-m", "feature adds a file")
        }
        try await git("switch", "-q", "main")
        if conflicting {
            _ = dir.write("work/file.txt", "one\ntwo from main\nthree\n")
            try await git("commit", "-q", "-a", "-m", "main changes line two")
            try await git("push", "-q", "origin", "main")
        }
    }

    /// Runs `plans/safe_merge.json` on `work` (SOURCE=feature) with `--format json`.
    func runPlan(_ variables: [String: String] = [:]) async -> CLIResult {
        var all = ["REPO": work, "SOURCE": "feature"]
        all.merge(variables) { $1 }
        var arguments = ["run", SafeMergePlanTests.planPath, "--state-dir", state, "--format", "json"]
        for (name, value) in all.sorted(by: { $0.key < $1.key }) { arguments += ["--var", "\(name)=\(value)"] }
        return await runCLI(arguments, in: dir.path, environment: Self.environment, timeout: .seconds(90))
    }

    /// `git ARGS` in the work repository: its stdout without the trailing newline.
    @discardableResult
    func git(_ arguments: String...) async throws -> String {
        try await git(in: work, arguments)
    }

    @discardableResult
    func git(in directory: String, _ arguments: String...) async throws -> String {
        try await git(in: directory, arguments)
    }

    func git(in directory: String, _ arguments: [String]) async throws -> String {
        let out = dir.path + "/.git-\(UUID().uuidString).out"
        let err = dir.path + "/.git-\(UUID().uuidString).err"
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: err)
        }
        let spec = ProcessSpec(command: "git", arguments: arguments, environment: Self.environment,
                               workingDirectory: directory, stdoutPath: out, stderrPath: err,
                               timeout: .seconds(30), killGrace: .seconds(1))
        let outcome = await LocalProcess.run(spec)
        guard outcome.succeeded else {
            throw GitFailure(arguments: arguments, outcome: "\(outcome.termination)", stderr: read(err) ?? "")
        }
        var text = read(out) ?? ""
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
}

private struct GitFailure: Error, CustomStringConvertible {
    var arguments: [String]
    var outcome: String
    var stderr: String
    var description: String { "git \(arguments.joined(separator: " ")) failed (\(outcome)): \(stderr)" }
}
