import COmnibaseShims
import Glibc

/// Turns a ``ProcessSpec`` into a running ``ChildProcess``: validation, executable lookup, output
/// pipes (or `/dev/null`, or log files when the ``OutputPump`` is not available), the spawn
/// (`omni_spawn_start` in the C shim: a clone sharing this process's memory until the exec, like
/// `posix_spawn`, but one that returns without waiting for the exec) and registration with the
/// ``ProcessMonitor``. Whether the exec worked is known when the child is reaped
/// (``ChildProcess/reap()``).
enum ProcessLauncher {
    /// How many times a spawn that failed with `EAGAIN` (process or memory limits), `ETXTBSY`,
    /// `EMFILE` or `ENFILE` (descriptors held by other steps) is retried (by ``LocalProcess``,
    /// which starts the spec again, after 20, 40, 80, 160 and 320 ms).
    ///
    /// `ETXTBSY`: a script that was just written can still be open for writing in a child that
    /// another thread is spawning at that moment (the descriptor is close-on-exec, but it exists
    /// until that child execs), and exec refuses a file open for writing. It clears in
    /// microseconds, so a short retry makes the race invisible (Go's os/exec does the same).
    static let spawnRetries = 5

    /// Starts `spec`, or says in one sentence why it cannot be started.
    ///
    /// Every fd opened here is close-on-exec, and the parent's copies of the child's output fds
    /// are closed before returning, whatever happened: only the child (and what it starts) holds
    /// the pipes' write ends afterwards, so the pump sees end-of-file when they are all gone.
    static func launch(_ spec: ProcessSpec, monitor: ProcessMonitor, pump: OutputPump) -> Result<ChildProcess, LaunchFailure> {
        if let problem = validate(spec) {
            return .failure(problem)
        }
        if let directory = spec.workingDirectory, !ExecutableLookup.isDirectory(directory) {
            let exists = access(directory, F_OK) == 0
            return .failure(LaunchFailure("working directory \(exists ? "is not a directory" : "does not exist"): \(directory)"))
        }
        let executable: String
        switch ExecutableLookup.resolve(spec.command, path: spec.environmentValue("PATH"), workingDirectory: spec.workingDirectory) {
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
        // The spawn's own entries on top of a shared base, or the whole environment.
        let own = spec.environment.isEmpty ? nil : EncodedEnvironment(spec.environment)
        let base = spec.baseEnvironment ?? EncodedEnvironment([:])
        var pid: pid_t = 0
        var spawnedPidfd: Int32 = -1
        var handle: UnsafeMutableRawPointer?
        let code = argv.withPointers { argvPointer in
            base.withEnvp(overriding: own) { envpPointer in
                withOptionalCString(spec.workingDirectory) { directory in
                    omni_spawn_start(executable, argvPointer, envpPointer, directory, output.stdout, output.stderr,
                                     &pid, &spawnedPidfd, &handle)
                }
            }
        }
        guard code == 0 else {
            ChildOutput.removeCreated(output.createdFiles)
            var failure = describe(spawnError: code, command: spec.command, workingDirectory: spec.workingDirectory,
                                   executable: executable)
            failure.code = code
            return .failure(failure)
        }
        let (exit, pidfd) = monitor.watch(pid: pid, pidfd: spawnedPidfd, streams: output.streams)
        let command = spec.command, directory = spec.workingDirectory
        return .success(ChildProcess(pid: pid, pidfd: pidfd, exit: exit, output: output.drain,
                                     captures: (output.stdoutCapture, output.stderrCapture),
                                     createdFiles: output.createdFiles, pipeInodes: output.pipeInodes,
                                     spawn: SpawnHandle(handle),
                                     describeFailure: { code in
                                         describe(spawnError: code, command: command, workingDirectory: directory,
                                                  executable: executable)
                                     }))
    }

    /// Whether a spawn that failed with error number `code` (the clone's, the child's before its
    /// exec, or the setup's) is worth starting again: process or memory limits (`EAGAIN`), a file
    /// busy being written (`ETXTBSY`, see ``spawnRetries``), or descriptors that run out while
    /// other steps hold them (`EMFILE`, `ENFILE`).
    static func isTransient(_ code: Int32) -> Bool {
        code == ETXTBSY || code == EAGAIN || code == EMFILE || code == ENFILE
    }

    /// A reason the spec can never be started, checked before anything touches the system.
    private static func validate(_ spec: ProcessSpec) -> LaunchFailure? {
        if containsNUL(spec.command) {
            return LaunchFailure("the command contains a NUL byte")
        }
        if let index = spec.arguments.firstIndex(where: containsNUL) {
            return LaunchFailure("argument \(index + 1) contains a NUL byte")
        }
        for (name, value) in spec.environment {
            if let problem = EncodedEnvironment.check(name: name, value: value) { return problem }
        }
        if let problem = spec.baseEnvironment?.problem { return problem }
        if let directory = spec.workingDirectory, containsNUL(directory) {
            return LaunchFailure("the working directory contains a NUL byte")
        }
        return nil
    }

    private static func containsNUL(_ string: String) -> Bool { EncodedEnvironment.containsNUL(string) }

    /// One sentence for an error number of the spawn or of the child before its exec. A file
    /// that a cached search found may have lost its permission or its link's target: after
    /// `ENOENT` or `EACCES` the next attempt searches afresh.
    private static func describe(spawnError code: Int32, command: String, workingDirectory: String?,
                                 executable: String) -> LaunchFailure {
        if code == ENOENT || code == EACCES { ExecutableLookup.searchCache.forget() }
        switch code {
        case ENOENT:
            if let directory = workingDirectory, !ExecutableLookup.isDirectory(directory) {
                return LaunchFailure("working directory does not exist: \(directory)")
            }
            // The file was there a moment ago: either it vanished or its `#!` interpreter is missing.
            return access(executable, F_OK) == 0
                ? LaunchFailure("the interpreter named on the #! line of \(command) was not found")
                : LaunchFailure("command not found: \(command)")
        case EACCES: return LaunchFailure("permission denied: \(command)")
        case ENOEXEC: return LaunchFailure("not an executable format (binary or #! script): \(command)")
        case ENOTDIR: return LaunchFailure("a component of the path is not a directory: \(workingDirectory ?? command)")
        case E2BIG: return LaunchFailure("argument list and environment too long for \(command)")
        case EMFILE, ENFILE: return .outOfFiles(code)
        default: return LaunchFailure("cannot start \(command): \(SystemCallError(call: "spawn", code: code))")
        }
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
