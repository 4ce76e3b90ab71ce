import Glibc

/// The fds that become a child's fds 1 and 2, and the drain that tells when its output is copied.
struct ChildOutput {
    /// The fd for the child's stdout.
    let stdout: Int32
    /// The fd for the child's stderr; the same fd as ``stdout`` when both paths are equal.
    let stderr: Int32
    /// Signalled when the pump has read every pipe to end-of-file; `nil` when no stream goes
    /// through the pump.
    let drain: OutputDrain?

    /// The memory of a captured stdout, if it is captured.
    let stdoutCapture: OutputCapture?
    /// The memory of a captured stderr, if it is captured.
    let stderrCapture: OutputCapture?
    /// The streams that go through the pump's loop, handed on to the child's ``ExitEntry``.
    let streams: [LogCopy]
    /// Log files created exclusively before the spawn (no pump, or no descriptor for a pipe):
    /// removed when the child did not get to execute (the spawn failed, or the child before its
    /// exec), since nothing wrote to them and starting the spec again creates them anew
    /// (``removeCreated(_:)``).
    let createdFiles: [String]
    /// The inode numbers of the pipes the child writes its output into: a process still holding
    /// one after the child's group is gone came from the child, whatever its group, session or
    /// environment (``ChildProcess/tearDown(grace:)``).
    let pipeInodes: [UInt64]

    /// Removes log files created for a child that never executed.
    static func removeCreated(_ paths: [String]) {
        for path in paths { unlink(path) }
    }

    /// The path that sends a stream nowhere without a pipe or a file.
    static let discard = "/dev/null"

    /// Sets up each distinct destination of `spec`: `/dev/null` is opened directly; a file gets
    /// a pipe copied by `pump` into the file, which is created on the first byte (if the pump is
    /// not available, the file is created or truncated now and given to the child directly); a
    /// capture gets a pipe copied by `pump` into memory.
    ///
    /// - Returns: The fds, or why the output could not be set up (only possible for `/dev/null`,
    ///   for files opened directly and for a capture without the pump; a pipe's log-file
    ///   problems surface later, in the drain).
    static func prepare(_ spec: ProcessSpec, pump: OutputPump) -> Result<ChildOutput, LaunchFailure> {
        let shared = !isCapture(spec.stdout) && !isCapture(spec.stderr) && spec.stderr.path == spec.stdout.path
        let drain = OutputDrain(pump: pump)
        var streams: [LogCopy] = []
        // A log file created here (no pump, `O_EXCL`): removed again if the setup or the spawn
        // fails, so that a retry of the spawn can create it.
        var created: [String] = []
        var pipes: [Int32] = []
        func destination(_ target: OutputDestination, _ stream: String) -> Result<(Int32, OutputCapture?), LaunchFailure> {
            let path: String
            switch target {
            case .capture(let limit):
                let capture = OutputCapture(limit: limit)
                guard let attached = pump.attach(path: "", capture: capture, stream: stream, drain: drain) else {
                    return .failure(LaunchFailure("cannot capture the \(stream): the output pump is not available"))
                }
                streams.append(attached.copy)
                pipes.append(attached.writeEnd)
                return .success((attached.writeEnd, capture))
            case .discard:
                path = discard
            case .file(let file):
                path = file
                // Without a pipe (no pump, or no descriptor left for one: a file given to the
                // child holds none in the engine after the spawn, a pipe holds its read end),
                // the child writes into the file directly.
                if path != discard, let attached = pump.attach(path: path, stream: stream, exclusive: spec.keepsExistingLogs, drain: drain) {
                    streams.append(attached.copy)
                    pipes.append(attached.writeEnd)
                    return .success((attached.writeEnd, nil))
                }
            }
            let isDiscard = path == discard
            let creation = spec.keepsExistingLogs ? O_CREAT | O_EXCL | O_NOFOLLOW : O_CREAT | O_TRUNC
            let flags = isDiscard ? O_WRONLY | O_CLOEXEC : O_WRONLY | creation | O_CLOEXEC
            let fd = SystemCallError.retryingOnInterrupt { open(path, flags, 0o600) }
            guard fd >= 0 else {
                // A pipe that could not be made for want of descriptors led here: so does the file.
                if errno == EMFILE || errno == ENFILE { return .failure(.outOfFiles(errno)) }
                return .failure(LaunchFailure("cannot open the \(stream) log \(path): \(SystemCallError.message(for: errno))"))
            }
            if !isDiscard && spec.keepsExistingLogs { created.append(path) }
            return .success((fd, nil))
        }
        let stdout: (fd: Int32, capture: OutputCapture?)
        switch destination(spec.stdout, shared ? "stdout and stderr" : "stdout") {
        case .success(let prepared): stdout = prepared
        case .failure(let failure): return .failure(failure)
        }
        var stderr = stdout
        if !shared {
            switch destination(spec.stderr, "stderr") {
            case .success(let prepared): stderr = prepared
            case .failure(let failure):
                close(stdout.fd)
                // The spawn may be tried again (a transient failure), and an attempt's log is
                // created exclusively: the empty file made for stdout must not be in its way.
                removeCreated(created)
                return .failure(failure)
            }
        }
        // No stream went through the pump when the drain is complete before the spawn.
        return .success(ChildOutput(stdout: stdout.fd, stderr: stderr.fd, drain: drain.isComplete ? nil : drain,
                                    stdoutCapture: stdout.capture, stderrCapture: shared ? nil : stderr.capture,
                                    streams: streams, createdFiles: created, pipeInodes: pipes.compactMap(inode)))
    }

    /// The inode number of an open file, or nil.
    private static func inode(_ fd: Int32) -> UInt64? {
        var info = stat()
        return fstat(fd, &info) == 0 ? UInt64(info.st_ino) : nil
    }

    private static func isCapture(_ destination: OutputDestination) -> Bool {
        if case .capture = destination { return true }
        return false
    }

    /// Closes the parent's copies of the child's fds; call once the spawn is over.
    func closeParentCopies() {
        close(stdout)
        if stderr != stdout { close(stderr) }
    }
}
