import Foundation
import Orchestration

/// Runs `git` through the engine's process layer (``LocalProcess``: its own process group, a
/// time limit, output captured in memory) and returns what it printed.
///
/// Every command gets `GIT_TERMINAL_PROMPT=0` and `LC_ALL=C` (stable messages), loses any
/// inherited `GIT_DIR`/`GIT_WORK_TREE`/`GIT_INDEX_FILE`, and runs with automatic garbage
/// collection off (`gc.auto=0`), so no background `git gc` races the orchestrator's own ref
/// updates. Commits made by the engine skip hooks and signing (the CI plan is where checks
/// belong), and get a fallback identity when the repository has none configured.
public struct Git: Sendable {
    /// What one git command did.
    public struct Result: Sendable {
        /// The exit status, or nil when git did not exit normally (signal, timeout, not found).
        public var status: Int32?
        /// Its standard output.
        public var stdout: String
        /// Its standard error.
        public var stderr: String
        /// Whether it exited 0.
        public var succeeded: Bool { status == 0 }
        /// Standard output without the trailing line break.
        public var trimmed: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        /// One line for messages: stderr's first line, or stdout's.
        public var firstErrorLine: String {
            let text = stderr.isEmpty ? stdout : stderr
            return text.split(separator: "\n").first.map(String.init) ?? "exit status \(status.map(String.init) ?? "?")"
        }
    }

    /// A folder for git's temporary files (the fingerprint index of ``Workspace``); output is
    /// captured in memory, not written here.
    public let scratchDirectory: String
    /// The environment every command starts from.
    public let environment: [String: String]
    /// `-c` settings added to every command.
    public let settings: [String]
    /// The time limit of one command.
    public let timeout: Duration
    /// The most bytes of stdout (and of stderr) kept of one command: 64 MiB, far above what the
    /// engine's git commands print (ids, short lists, status lines).
    public static let outputLimit = 64 << 20

    /// Creates a runner.
    /// - Parameters:
    ///   - scratchDirectory: An existing folder for temporary files.
    ///   - identity: `(name, email)` for engine commits when the repository has no identity.
    ///   - timeout: The time limit of one command (default 10 minutes).
    public init(scratchDirectory: String, identity: (String, String)? = nil, timeout: Duration = .seconds(600)) {
        self.scratchDirectory = scratchDirectory
        var environment = ProcessInfo.processInfo.environment
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX"] {
            environment[name] = nil
        }
        environment["GIT_TERMINAL_PROMPT"] = "0"
        environment["LC_ALL"] = "C"
        self.environment = environment
        var settings = ["-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "core.hooksPath=/dev/null",
                        "-c", "commit.gpgSign=false", "-c", "merge.autoStash=false"]
        if let (name, email) = identity {
            settings += ["-c", "user.name=\(name)", "-c", "user.email=\(email)"]
        }
        self.settings = settings
        self.timeout = timeout
    }

    /// Runs `git ARGS` in `directory`.
    ///
    /// - Parameters:
    ///   - arguments: The arguments after `git`.
    ///   - directory: The working directory (a worktree or the repository).
    ///   - environment: Extra environment variables (e.g. `GIT_INDEX_FILE`).
    /// - Returns: The status and output; never throws (a git that cannot start has status nil,
    ///   and so has one whose stdout exceeded ``outputLimit``: a cut output is never used).
    public func run(_ arguments: [String], in directory: String, environment extra: [String: String] = [:]) async -> Result {
        var environment = self.environment
        for (name, value) in extra { environment[name] = value }
        let spec = ProcessSpec(command: "git", arguments: settings + arguments, environment: environment,
                               workingDirectory: directory, stdout: .capture(limit: Self.outputLimit),
                               stderr: .capture(limit: Self.outputLimit), timeout: timeout, killGrace: .seconds(2))
        let outcome = await LocalProcess.run(spec)
        let stdout = outcome.capturedStdout?.text ?? ""
        var stderr = outcome.capturedStderr?.text ?? ""
        var status: Int32?
        switch outcome.termination {
        case .exited(let code): status = outcome.timedOut || outcome.cancelled ? nil : code
        case .signaled: status = nil
        case .failedToStart(let reason):
            status = nil
            stderr = "git could not be started: \(reason)"
        }
        if outcome.timedOut { stderr = "git \(arguments.first ?? "") timed out\n" + stderr }
        if let captured = outcome.capturedStdout, captured.isTruncated {
            status = nil
            stderr = "git \(arguments.first ?? "") printed more than \(Self.outputLimit) bytes\n" + stderr
        }
        return Result(status: status, stdout: stdout, stderr: stderr)
    }
}

extension Git.Result {
    /// Discards a result whose failure changes nothing for the caller.
    func ignore() {}
}
