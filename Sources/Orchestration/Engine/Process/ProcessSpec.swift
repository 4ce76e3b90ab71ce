import Foundation

/// What to start: one command, its arguments and environment, and where its output goes.
///
/// A spec describes one attempt of a step. ``LocalProcess/run(_:)`` starts it as the leader of a
/// new process group, with stdin from `/dev/null` and stdout/stderr going through pipes that one
/// engine thread copies into the two log files, chunk by chunk (the engine's memory does not grow
/// with output, and a child that writes faster than the disk takes simply waits).
///
/// ```swift
/// let spec = ProcessSpec(
///     command: "make", arguments: ["-j2"],
///     stdoutPath: "/tmp/run/build.out", stderrPath: "/tmp/run/build.err",
///     timeout: .seconds(120), killGrace: .seconds(5))
/// let outcome = await LocalProcess.run(spec)
/// ```
package struct ProcessSpec: Sendable {
    /// The program: a path (absolute, or relative to `workingDirectory`), or a name looked up in
    /// the `PATH` of ``environment`` (falling back to the engine's own `PATH`), as `execvpe` does.
    ///
    /// The command is executed directly, not through a shell. A file that is not a binary or a
    /// `#!` script fails to start (it is not handed to `/bin/sh` the way `execvp` does).
    public var command: String

    /// The arguments after the program name (`argv[1...]`); `argv[0]` is ``command`` as given.
    ///
    /// Each element reaches the child byte for byte: no shell ever sees it.
    ///
    /// - Important: Elements must not contain NUL bytes; such a spec fails to start.
    public var arguments: [String]

    /// The complete environment of the child: nothing else is inherited, so callers merge the
    /// engine's environment themselves. Defaults to the engine's environment.
    ///
    /// - Important: Names must be non-empty and contain neither `=` nor NUL; values must not
    ///   contain NUL. Otherwise the spec fails to start.
    public var environment: [String: String]

    /// Entries encoded once and shared by many spawns (a runner's inherited environment): when
    /// set, the child's environment is this base with ``environment``'s entries added or
    /// replacing its own, so ``environment`` need hold only the spawn's own entries.
    var baseEnvironment: EncodedEnvironment?

    /// The value of `name` in the child's environment.
    func environmentValue(_ name: String) -> String? {
        environment[name] ?? baseEnvironment?.values[name]
    }

    /// The directory the child starts in; `nil` inherits the engine's current directory.
    public var workingDirectory: String?

    /// Where the child's fd 1 goes (see ``OutputDestination``).
    ///
    /// For ``OutputDestination/file(_:)``: the file is created when the process first writes to
    /// the stream (mode 0600, truncated if it exists unless ``keepsExistingLogs`` is set; a symbolic
    /// link at the path is refused). A
    /// process that writes nothing to the stream gets no file, and a file already at the path is
    /// then left as it was. `/dev/null` is given to the child directly, without a pipe or a file,
    /// as ``OutputDestination/discard`` is.
    ///
    /// - Important: A file that cannot be created or written (missing directory, permissions,
    ///   full disk) does not stop the process: its output is discarded and the problem is in
    ///   ``ProcessOutcome/logError``. Nothing caps the file's size. Output that a background
    ///   process writes after the attempt returned still goes to the file, until the process
    ///   closes the stream or the engine exits.
    public var stdout: OutputDestination

    /// Where the child's fd 2 goes; like ``stdout``.
    ///
    /// When both are the same ``OutputDestination/file(_:)`` (paths compared as strings), both fds
    /// share one pipe, so the file keeps the order in which the child wrote to either. Two
    /// ``OutputDestination/capture(limit:)`` destinations are always captured separately.
    public var stderr: OutputDestination

    /// The file of ``stdout``: its path, `/dev/null` for ``OutputDestination/discard``, and the
    /// empty string for ``OutputDestination/capture(limit:)``. Setting it makes ``stdout`` that
    /// file (`/dev/null` makes it ``OutputDestination/discard``).
    public var stdoutPath: String {
        get { stdout.path }
        set { stdout = OutputDestination(path: newValue) }
    }

    /// The file of ``stderr``, like ``stdoutPath``.
    public var stderrPath: String {
        get { stderr.path }
        set { stderr = OutputDestination(path: newValue) }
    }

    /// How long the attempt may run before its process group is torn down; `nil` means no limit.
    public var timeout: Duration?

    /// Whether a file already at ``stdoutPath`` or ``stderrPath`` is left as it is: the log is then
    /// created with `O_EXCL`, and an existing file is a log error (``ProcessOutcome/logError``,
    /// the stream's output discarded) instead of being truncated. Step attempts set it, so no
    /// attempt's log ever replaces another's. Default `false`.
    public var keepsExistingLogs = false

    /// How long the process group gets between SIGTERM and SIGKILL when it is torn down.
    public var killGrace: Duration

    /// Creates a spec.
    ///
    /// - Parameters:
    ///   - command: A path, or a name looked up in the `PATH` of `environment`.
    ///   - arguments: `argv[1...]`.
    ///   - environment: The child's complete environment (default: the engine's).
    ///   - workingDirectory: The child's directory (default: inherit).
    ///   - stdoutPath: The file for fd 1, created on the first byte.
    ///   - stderrPath: The file for fd 2, created on the first byte.
    ///   - timeout: The time limit (default: none).
    ///   - killGrace: The SIGTERM to SIGKILL grace period (default: 5 seconds).
    public init(
        command: String,
        arguments: [String] = [],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        workingDirectory: String? = nil,
        stdoutPath: String,
        stderrPath: String,
        timeout: Duration? = nil,
        killGrace: Duration = .seconds(5)
    ) {
        self.init(command: command, arguments: arguments, environment: environment, workingDirectory: workingDirectory,
                  stdout: OutputDestination(path: stdoutPath), stderr: OutputDestination(path: stderrPath),
                  timeout: timeout, killGrace: killGrace)
    }

    /// Creates a spec whose output goes to any ``OutputDestination``.
    ///
    /// ```swift
    /// let spec = ProcessSpec(command: "git", arguments: ["rev-parse", "HEAD"],
    ///                        stdout: .capture(limit: 1 << 20), stderr: .capture(limit: 64 << 10))
    /// let outcome = await LocalProcess.run(spec)
    /// let head = outcome.capturedStdout?.text
    /// ```
    ///
    /// - Parameters:
    ///   - stdout: Where fd 1 goes.
    ///   - stderr: Where fd 2 goes.
    ///   - The other parameters: as in ``init(command:arguments:environment:workingDirectory:stdoutPath:stderrPath:timeout:killGrace:)``.
    public init(
        command: String,
        arguments: [String] = [],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        workingDirectory: String? = nil,
        stdout: OutputDestination,
        stderr: OutputDestination,
        timeout: Duration? = nil,
        killGrace: Duration = .seconds(5)
    ) {
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.stdout = stdout
        self.stderr = stderr
        self.timeout = timeout
        self.killGrace = killGrace
    }
}

/// Where one output stream of a child goes.
package enum OutputDestination: Sendable, Hashable {
    /// Into this file, created on the stream's first byte (step logs: the engine's fast path).
    case file(String)
    /// Nowhere: the child gets `/dev/null`, with no pipe and no file.
    case discard
    /// Into memory: the **first** `limit` bytes are kept and returned in the outcome
    /// (``ProcessOutcome/capturedStdout``, ``ProcessOutcome/capturedStderr``); the rest is read and
    /// counted in ``CapturedOutput/droppedBytes``, so a child that prints more never blocks.
    ///
    /// The first bytes, not the last: capture is meant for commands whose whole output is needed
    /// and usually small (git), where a cut output must be noticed, not silently used.
    ///
    /// - Important: Capture needs the engine's output pump (one epoll thread); if it could not be
    ///   started, the spec fails to start with a sentence saying so.
    case capture(limit: Int)

    /// `/dev/null` is ``discard``; any other path is ``file(_:)``.
    public init(path: String) {
        self = path == ChildOutput.discard ? .discard : .file(path)
    }

    /// The file's path, `/dev/null` for ``discard``, empty for ``capture(limit:)``.
    public var path: String {
        switch self {
        case .file(let path): path
        case .discard: ChildOutput.discard
        case .capture: ""
        }
    }
}

/// What ``OutputDestination/capture(limit:)`` kept of one stream.
package struct CapturedOutput: Sendable, Equatable {
    /// The first bytes of the stream, at most the limit.
    public var bytes: [UInt8]
    /// How many bytes came after the limit and were thrown away; 0 when nothing was cut.
    public var droppedBytes: Int

    /// Creates a capture.
    public init(bytes: [UInt8] = [], droppedBytes: Int = 0) {
        self.bytes = bytes
        self.droppedBytes = droppedBytes
    }

    /// Whether the stream was longer than the limit.
    public var isTruncated: Bool { droppedBytes > 0 }

    /// The bytes as UTF-8 text (invalid sequences repaired).
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}
