import COmnibaseShims
import Glibc

/// Turns a ``ProcessSpec`` into a running ``ChildProcess``: validation, executable lookup, output
/// pipes (or `/dev/null`, or log files when the ``OutputPump`` is not available), `posix_spawn`
/// (in the C shim) and registration with the ``ProcessMonitor``.
enum ProcessLauncher {
    /// How many times a spawn that failed with `EAGAIN` (process or memory limits) is retried.
    static let spawnRetries = 3

    /// Starts `spec`, or says in one sentence why it cannot be started.
    ///
    /// Every fd opened here is close-on-exec, and the parent's copies of the child's output fds
    /// are closed before returning, whatever happened: only the child (and what it starts) holds
    /// the pipes' write ends afterwards, so the pump sees end-of-file when they are all gone.
    static func launch(_ spec: ProcessSpec, monitor: ProcessMonitor, pump: OutputPump) async -> Result<ChildProcess, LaunchFailure> {
        if let problem = validate(spec) {
            return .failure(problem)
        }
        if let directory = spec.workingDirectory, !ExecutableLookup.isDirectory(directory) {
            let exists = access(directory, F_OK) == 0
            return .failure(LaunchFailure("working directory \(exists ? "is not a directory" : "does not exist"): \(directory)"))
        }
        let executable: String
        switch ExecutableLookup.resolve(spec.command, environment: spec.environment, workingDirectory: spec.workingDirectory) {
        case .success(let path): executable = path
        case .failure(let failure): return .failure(failure)
        }

        let output: ChildOutput
        switch ChildOutput.prepare(spec, pump: pump) {
        case .success(let prepared): output = prepared
        case .failure(let failure): return .failure(failure)
        }
        defer { output.closeParentCopies() }

        let argv = CStringArray([spec.command] + spec.arguments)
        let envp = CStringArray(spec.environment.map { "\($0.key)=\($0.value)" })
        var attempt = 0
        while true {
            var pid: pid_t = 0
            let code = argv.withPointers { argvPointer in
                envp.withPointers { envpPointer in
                    withOptionalCString(spec.workingDirectory) { directory in
                        omni_spawn(executable, argvPointer, envpPointer, directory, output.stdout, output.stderr, &pid)
                    }
                }
            }
            if code == 0 {
                let (exit, pidfd) = monitor.watch(pid: pid)
                return .success(ChildProcess(pid: pid, pidfd: pidfd, exit: exit, output: output.drain))
            }
            // Transient: back off outside any lock, in the async context, then try again.
            if code == EAGAIN && attempt < spawnRetries && !Task.isCancelled {
                attempt += 1
                try? await Task.sleep(for: .milliseconds(10 << attempt))
                continue
            }
            return .failure(describe(spawnError: code, spec: spec, executable: executable))
        }
    }

    /// A reason the spec can never be started, checked before anything touches the system.
    private static func validate(_ spec: ProcessSpec) -> LaunchFailure? {
        if spec.command.utf8.contains(0) {
            return LaunchFailure("the command contains a NUL byte")
        }
        if let index = spec.arguments.firstIndex(where: { $0.utf8.contains(0) }) {
            return LaunchFailure("argument \(index + 1) contains a NUL byte")
        }
        for (name, value) in spec.environment {
            if name.isEmpty || name.utf8.contains(UInt8(ascii: "=")) || name.utf8.contains(0) {
                return LaunchFailure("invalid environment variable name: \(name.debugDescription)")
            }
            if value.utf8.contains(0) {
                return LaunchFailure("environment variable \(name) contains a NUL byte")
            }
        }
        if let directory = spec.workingDirectory, directory.utf8.contains(0) {
            return LaunchFailure("the working directory contains a NUL byte")
        }
        return nil
    }

    /// One sentence for an error number returned by `posix_spawn`.
    private static func describe(spawnError code: Int32, spec: ProcessSpec, executable: String) -> LaunchFailure {
        let command = spec.command
        switch code {
        case ENOENT:
            if let directory = spec.workingDirectory, !ExecutableLookup.isDirectory(directory) {
                return LaunchFailure("working directory does not exist: \(directory)")
            }
            // The file was there a moment ago: either it vanished or its `#!` interpreter is missing.
            return access(executable, F_OK) == 0
                ? LaunchFailure("the interpreter named on the #! line of \(command) was not found")
                : LaunchFailure("command not found: \(command)")
        case EACCES: return LaunchFailure("permission denied: \(command)")
        case ENOEXEC: return LaunchFailure("not an executable format (binary or #! script): \(command)")
        case ENOTDIR: return LaunchFailure("a component of the path is not a directory: \(spec.workingDirectory ?? command)")
        case E2BIG: return LaunchFailure("argument list and environment too long for \(command)")
        default: return LaunchFailure("cannot start \(command): \(SystemCallError(call: "posix_spawn", code: code))")
        }
    }
}

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
        let drain = OutputDrain()
        func destination(_ path: String, _ stream: String) -> Result<Int32, LaunchFailure> {
            if path != discard, let writeEnd = pump.attach(path: path, stream: stream, drain: drain) {
                return .success(writeEnd)
            }
            let isDiscard = path == discard
            let flags = isDiscard ? O_WRONLY | O_CLOEXEC : O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
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

/// NUL-terminated C strings in a NULL-terminated array (`argv`, `envp`), freed on deinit.
private final class CStringArray {
    private var pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        pointers = strings.map { strdup($0) }
        pointers.append(nil)
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }

    func withPointers<R>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// Calls `body` with `string` as a C string, or with `nil`.
private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
