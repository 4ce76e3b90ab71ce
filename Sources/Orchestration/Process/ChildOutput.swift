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

    /// The path that sends a stream nowhere without a pipe or a file.
    static let discard = "/dev/null"

    /// Sets up each distinct path of `spec`: `/dev/null` is opened directly; any other path gets
    /// a pipe copied by `pump` into the file, which is created on the first byte; if the pump is
    /// not available, the file is created (or truncated) now and given to the child directly.
    ///
    /// - Returns: The fds, or why the output could not be set up (only possible for `/dev/null`
    ///   and for files opened directly; a pipe's log-file problems surface later, in the drain).
    static func prepare(_ spec: ProcessSpec, pump: OutputPump) -> Result<ChildOutput, LaunchFailure> {
        let shared = spec.stderrPath == spec.stdoutPath
        let drain = OutputDrain(pump: pump)
        func destination(_ path: String, _ stream: String) -> Result<Int32, LaunchFailure> {
            if path != discard,
               let writeEnd = pump.attach(path: path, stream: stream, exclusive: spec.keepsExistingLogs, drain: drain) {
                return .success(writeEnd)
            }
            let isDiscard = path == discard
            let creation = spec.keepsExistingLogs ? O_CREAT | O_EXCL | O_NOFOLLOW : O_CREAT | O_TRUNC
            let flags = isDiscard ? O_WRONLY | O_CLOEXEC : O_WRONLY | creation | O_CLOEXEC
            let fd = SystemCallError.retryingOnInterrupt { open(path, flags, 0o600) }
            guard fd >= 0 else {
                return .failure(LaunchFailure("cannot open the \(stream) log \(path): \(SystemCallError.message(for: errno))"))
            }
            return .success(fd)
        }
        let stdout: Int32
        switch destination(spec.stdoutPath, shared ? "stdout and stderr" : "stdout") {
        case .success(let fd): stdout = fd
        case .failure(let failure): return .failure(failure)
        }
        var stderr = stdout
        if !shared {
            switch destination(spec.stderrPath, "stderr") {
            case .success(let fd): stderr = fd
            case .failure(let failure):
                close(stdout)
                return .failure(failure)
            }
        }
        // No stream went through the pump when the drain is complete before the spawn.
        return .success(ChildOutput(stdout: stdout, stderr: stderr, drain: drain.isComplete ? nil : drain))
    }

    /// Closes the parent's copies of the child's fds; call once the spawn is over.
    func closeParentCopies() {
        close(stdout)
        if stderr != stdout { close(stderr) }
    }
}
