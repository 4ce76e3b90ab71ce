import Foundation
import COmnibaseShims
import Glibc
import Testing

@testable import Orchestration

/// Real processes through `LocalProcess`: exits, start failures, output files, environment and
/// argv fidelity, signal state of children, timeouts, teardown of whole groups, cancellation and
/// many concurrent children. Children announce readiness by writing marker files; the tests wait
/// on those markers (bounded) instead of sleeping.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct ProcessTests {
    // MARK: - Exit statuses

    @Test func trueExitsZero() async throws {
        let scratch = try Scratch()
        let outcome = await LocalProcess.run(scratch.spec("/bin/true"))
        #expect(outcome.termination == .exited(0))
        #expect(outcome.succeeded)
        #expect(outcome.pid != nil)
        #expect(!outcome.timedOut && !outcome.cancelled && outcome.survivors == 0)
    }

    @Test func nonZeroExitStatusIsReported() async throws {
        let scratch = try Scratch()
        let outcome = await LocalProcess.run(scratch.spec("sh", ["-c", "exit 3"]))
        #expect(outcome.termination == .exited(3))
        #expect(!outcome.succeeded)
    }

    @Test func deathBySignalIsReported() async throws {
        let scratch = try Scratch()
        let outcome = await LocalProcess.run(scratch.spec("sh", ["-c", "kill -9 $$"]))
        #expect(outcome.termination == .signaled(SIGKILL))
        #expect(!outcome.succeeded)
    }

    // MARK: - Failures to start

    @Test func unknownCommandFailsToStart() async throws {
        let scratch = try Scratch()
        let outcome = await LocalProcess.run(scratch.spec("omnibase-no-such-command"))
        #expect(outcome.termination == .failedToStart("command not found: omnibase-no-such-command"))
        #expect(outcome.pid == nil)
        #expect(!outcome.succeeded)
    }

    @Test func missingPathFailsToStart() async throws {
        let scratch = try Scratch()
        let outcome = await LocalProcess.run(scratch.spec("/nonexistent/omnibase-tool"))
        #expect(outcome.termination == .failedToStart("command not found: /nonexistent/omnibase-tool"))
    }

    @Test func missingWorkingDirectoryFailsToStart() async throws {
        let scratch = try Scratch()
        var spec = scratch.spec("/bin/true")
        spec.workingDirectory = scratch.path("no-such-dir")
        let outcome = await LocalProcess.run(spec)
        #expect(outcome.termination == .failedToStart("working directory does not exist: \(scratch.path("no-such-dir"))"))
        #expect(outcome.pid == nil)
    }

    @Test func nonExecutableFileFailsToStart() async throws {
        let scratch = try Scratch()
        let script = try scratch.write("script.sh", "#!/bin/sh\nexit 0\n", mode: 0o644)
        let outcome = await LocalProcess.run(scratch.spec(script))
        #expect(outcome.termination == .failedToStart("permission denied: \(script)"))
        #expect(outcome.pid == nil)
    }

    @Test func fileInNoExecutableFormatFailsToStart() async throws {
        let scratch = try Scratch()
        let junk = try scratch.write("junk", "\u{7}\u{1}not a program\n", mode: 0o755)
        let outcome = await LocalProcess.run(scratch.spec(junk))
        #expect(outcome.termination == .failedToStart("not an executable format (binary or #! script): \(junk)"))
        #expect(outcome.pid == nil)
    }

    @Test func scriptWithMissingInterpreterFailsToStart() async throws {
        let scratch = try Scratch()
        let script = try scratch.write("script", "#!/nonexistent/interpreter\n", mode: 0o755)
        let outcome = await LocalProcess.run(scratch.spec(script))
        #expect(outcome.termination == .failedToStart("the interpreter named on the #! line of \(script) was not found"))
    }

    @Test func relativeCommandRunsInWorkingDirectory() async throws {
        let scratch = try Scratch()
        _ = try scratch.write("step.sh", "#!/bin/sh\npwd\n", mode: 0o755)
        var spec = scratch.spec("./step.sh")
        spec.workingDirectory = scratch.root
        let outcome = await LocalProcess.run(spec)
        #expect(outcome.termination == .exited(0))
        #expect(try scratch.read("out") == "\(scratch.root)\n")
    }

    /// A descriptor some other code of the engine's process opened without close-on-exec (a
    /// host application, Foundation writing a file) does not reach a step: with it, a script
    /// being written while another thread spawned stayed open for writing in that long-lived
    /// child and could not be executed (ETXTBSY) until the child ended.
    @Test func aDescriptorOpenedWithoutCloseOnExecDoesNotReachTheStep() async throws {
        let scratch = try Scratch()
        let leaked = open(scratch.path("leaked"), O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(leaked > 2)
        defer { close(leaked) }
        let outcome = await LocalProcess.run(scratch.spec("/bin/sh", ["-c", "ls -l /proc/$$/fd"]))
        #expect(outcome.termination == .exited(0))
        let listing = try scratch.read("out")
        #expect(!listing.contains(scratch.path("leaked")), "\(listing)")
    }

    @Test func relativeCommandInRelativeWorkingDirectory() async throws {
        let scratch = try Scratch()
        try FileManager.default.createDirectory(atPath: scratch.path("a/b/c"), withIntermediateDirectories: true)
        _ = try scratch.write("a/b/c/step.sh", "#!/bin/sh\npwd\n", mode: 0o755)
        // The same directory, spelled relative to the engine's current directory.
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        let relative = String(repeating: "../", count: depth) + scratch.path("a/b/c").dropFirst()
        var spec = scratch.spec("./step.sh")
        spec.workingDirectory = relative
        let outcome = await LocalProcess.run(spec)
        #expect(outcome.termination == .exited(0))
        #expect(try scratch.read("out") == "\(scratch.path("a/b/c"))\n")
    }

    @Test func commandIsLookedUpInTheChildsPath() async throws {
        let scratch = try Scratch()
        try FileManager.default.createDirectory(atPath: scratch.path("bin"), withIntermediateDirectories: true)
        _ = try scratch.write("bin/omnibase-tool", "#!/bin/sh\necho found\n", mode: 0o755)
        _ = try scratch.write("bin/omnibase-locked", "#!/bin/sh\necho found\n", mode: 0o644)
        var spec = scratch.spec("omnibase-tool")
        spec.environment = ["PATH": "\(scratch.path("bin")):/usr/bin:/bin"]
        #expect(await LocalProcess.run(spec).termination == .exited(0))
        #expect(try scratch.read("out") == "found\n")

        spec.command = "omnibase-locked"
        #expect(await LocalProcess.run(spec).termination == .failedToStart("permission denied: omnibase-locked"))
    }

    @Test func alreadyCancelledTaskStartsNothing() async throws {
        let scratch = try Scratch()
        let spec = scratch.spec("/bin/true")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await LocalProcess.run(spec)
        }
        let outcome = await task.value
        #expect(outcome.cancelled)
        #expect(outcome.pid == nil)
        #expect(!outcome.succeeded)
    }

    // MARK: - Output

    @Test func outputLandsInTheLogFiles() async throws {
        let scratch = try Scratch()
        let outcome = await LocalProcess.run(scratch.spec("sh", ["-c", "echo to-out; echo to-err >&2"]))
        #expect(outcome.termination == .exited(0))
        #expect(try scratch.read("out") == "to-out\n")
        #expect(try scratch.read("err") == "to-err\n")
        let mode = try FileManager.default.attributesOfItem(atPath: scratch.path("out"))[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func sameLogFileForBothStreams() async throws {
        let scratch = try Scratch()
        var spec = scratch.spec("sh", ["-c", "echo one; echo two >&2; echo three"])
        spec.stderrPath = spec.stdoutPath
        #expect(await LocalProcess.run(spec).termination == .exited(0))
        #expect(try scratch.read("out") == "one\ntwo\nthree\n")
    }

    @Test func logFilesAreTruncated() async throws {
        let scratch = try Scratch()
        _ = try scratch.write("out", String(repeating: "stale\n", count: 100), mode: 0o600)
        #expect(await LocalProcess.run(scratch.spec("sh", ["-c", "echo fresh"])).termination == .exited(0))
        #expect(try scratch.read("out") == "fresh\n")
    }

    @Test func largeOutputGoesStraightToTheFile() async throws {
        let scratch = try Scratch()
        let outcome = await LocalProcess.run(scratch.spec("head", ["-c", "50000000", "/dev/zero"]))
        #expect(outcome.termination == .exited(0))
        let size = try FileManager.default.attributesOfItem(atPath: scratch.path("out"))[.size] as? Int
        #expect(size == 50_000_000)
    }

    @Test func silentStepCreatesNoLogFiles() async throws {
        let scratch = try Scratch()
        let outcome = await LocalProcess.run(scratch.spec("/bin/true"))
        #expect(outcome.succeeded)
        #expect(outcome.logError == nil)
        #expect(!FileManager.default.fileExists(atPath: scratch.path("out")))
        #expect(!FileManager.default.fileExists(atPath: scratch.path("err")))
        // Only the stream that carries bytes gets its file.
        #expect(await LocalProcess.run(scratch.spec("sh", ["-c", "echo only-err >&2"])).succeeded)
        #expect(!FileManager.default.fileExists(atPath: scratch.path("out")))
        #expect(try scratch.read("err") == "only-err\n")
    }

    @Test func largeOutputOnBothStreamsIsCompleteAndMemoryStaysFlat() async throws {
        let scratch = try Scratch()
        let before = try #require(residentKilobytes())
        let outcome = await LocalProcess.run(scratch.spec("sh", ["-c", "head -c 1000000 /dev/zero >&2 & head -c 50000000 /dev/zero; wait"]))
        let after = try #require(residentKilobytes())
        #expect(outcome.succeeded)
        #expect(outcome.logError == nil)
        #expect(try scratch.size("out") == 50_000_000)
        #expect(try scratch.size("err") == 1_000_000)
        #expect(after - before < 30_000, "the engine's resident memory grew by \(after - before) KiB")
    }

    @Test func outputOfAGrandchildAfterTheLeaderExitedLandsInTheLog() async throws {
        let scratch = try Scratch()
        let go = scratch.path("go")
        // The grandchild holds both pipes and writes only once the test says so, after `run` returned.
        let script = "(while [ ! -e \(go) ]; do sleep 0.01; done; echo late; echo late-err >&2; echo last) & echo early"
        let outcome = await LocalProcess.run(scratch.spec("sh", ["-c", script]))
        #expect(outcome.succeeded)
        #expect(try scratch.read("out") == "early\n")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("err")))
        _ = try scratch.write("go", "", mode: 0o600)
        // The two pipes are read in whatever order epoll reports them: wait for both files.
        #expect(await scratch.waitUntil {
            (try? scratch.read("out")) == "early\nlate\nlast\n" && (try? scratch.read("err")) == "late-err\n"
        })
    }

    @Test func backgroundProcessHoldingThePipesDoesNotDelayTheReturn() async throws {
        let scratch = try Scratch()
        let pidFile = scratch.path("daemon")
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await LocalProcess.run(scratch.spec("sh", ["-c", "sleep 30 & echo $! > \(pidFile)"]))
        let elapsed = clock.now - start
        let daemon = try #require(await scratch.waitForPid(pidFile))
        defer { kill(daemon, SIGKILL) }
        #expect(outcome.succeeded)
        #expect(elapsed < .seconds(10), "run waited \(elapsed) for a background process that holds its pipes (it sleeps 30 s)")
        #expect(elapsed >= OutputDrain.window, "run returned before the drain window passed")
        #expect(ProcessTable.entry(pid: daemon)?.isAlive == true)
    }

    /// The pump keeps every waiting drain's deadline: many attempts whose pipes stay held, started
    /// at different moments, each return after their own window, and none waits for the holders.
    @Test func manyDrainWindowsRunOutTogether() async throws {
        let scratch = try Scratch()
        let clock = ContinuousClock()
        let results = await withTaskGroup(of: (Duration, Bool, pid_t?).self) { group in
            for index in 0..<12 {
                let pidFile = scratch.path("daemon-\(index)")
                var spec = scratch.spec("sh", ["-c", "sleep 30 & echo $! > \(pidFile)"])
                spec.stdoutPath = scratch.path("out-\(index)")
                spec.stderrPath = scratch.path("err-\(index)")
                group.addTask { [spec] in
                    try? await Task.sleep(for: .milliseconds(15 * index))
                    let start = clock.now
                    let outcome = await LocalProcess.run(spec)
                    let elapsed = clock.now - start
                    let text = try? String(contentsOfFile: pidFile, encoding: .utf8)
                    return (elapsed, outcome.succeeded, text.flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for (elapsed, succeeded, daemon) in results {
            if let daemon { kill(daemon, SIGKILL) }
            #expect(succeeded)
            #expect(daemon != nil)
            #expect(elapsed >= OutputDrain.window, "run returned before the drain window passed")
            #expect(elapsed < .seconds(10), "run waited \(elapsed) for background processes that hold its pipes")
        }
    }

    /// The pump's end of an output pipe does not block; the child's end does (a full pipe makes the
    /// child wait); both are close-on-exec.
    @Test func outputPipeEndsHaveTheirOwnFlags() throws {
        var ends: [Int32] = [-1, -1]
        try #require(omni_output_pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        #expect(fcntl(ends[0], F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(ends[1], F_GETFL) & O_NONBLOCK == 0)
        #expect(fcntl(ends[0], F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(ends[1], F_GETFD) & FD_CLOEXEC != 0)
    }

    /// A NUL byte would silently cut a C string short; such a spec is refused before anything starts.
    @Test func nulBytesAreRefusedBeforeTheSpawn() async throws {
        let scratch = try Scratch()
        var spec = scratch.spec("echo", ["fine", "cut\u{0}short"])
        #expect(await LocalProcess.run(spec).termination == .failedToStart("argument 2 contains a NUL byte"))
        spec = scratch.spec("ec\u{0}ho")
        #expect(await LocalProcess.run(spec).termination == .failedToStart("the command contains a NUL byte"))
        spec = scratch.spec("echo")
        spec.environment["LONG_ENOUGH_TO_BE_STORED_OUT_OF_LINE"] = String(repeating: "x", count: 40) + "\u{0}"
        #expect(await LocalProcess.run(spec).termination
            == .failedToStart("environment variable LONG_ENOUGH_TO_BE_STORED_OUT_OF_LINE contains a NUL byte"))
        spec = scratch.spec("echo")
        spec.environment["A\u{0}B"] = "x"
        #expect(await LocalProcess.run(spec).termination == .failedToStart("invalid environment variable name: \"A\\0B\""))
        #expect(!FileManager.default.fileExists(atPath: scratch.path("out")))
    }

    @Test func logFileThatCannotBeCreatedIsReportedAndDrained() async throws {
        let scratch = try Scratch()
        var spec = scratch.spec("sh", ["-c", "head -c 1000000 /dev/zero; echo to-err >&2; exit 3"])
        spec.stdoutPath = scratch.path("no-such-dir/out")
        let outcome = await LocalProcess.run(spec)
        // The process ran to its own end: a megabyte into a log that does not exist did not block it.
        #expect(outcome.termination == .exited(3))
        #expect(outcome.logError == "cannot create the stdout log \(spec.stdoutPath): No such file or directory")
        #expect(try scratch.read("err") == "to-err\n")
    }

    @Test func logFileThatCannotBeWrittenIsReported() async throws {
        let scratch = try Scratch()
        var spec = scratch.spec("sh", ["-c", "head -c 1000000 /dev/zero; echo to-err >&2"])
        spec.stdoutPath = "/dev/full"
        let outcome = await LocalProcess.run(spec)
        #expect(outcome.succeeded)
        let error = try #require(outcome.logError)
        #expect(error.hasPrefix("cannot write the stdout log /dev/full after 0 bytes: No space left on device"))
        #expect(try scratch.read("err") == "to-err\n")
    }

    @Test func symlinkOrReaderlessFifoAsLogIsRefusedWithoutBlocking() async throws {
        let scratch = try Scratch()
        let target = try scratch.write("target", "untouched\n", mode: 0o600)
        #expect(symlink(target, scratch.path("link")) == 0)
        #expect(mkfifo(scratch.path("fifo"), 0o600) == 0)
        var spec = scratch.spec("sh", ["-c", "echo to-out; echo to-err >&2"])
        spec.stdoutPath = scratch.path("link")
        spec.stderrPath = scratch.path("fifo")
        let outcome = await LocalProcess.run(spec)
        #expect(outcome.succeeded)
        let error = try #require(outcome.logError)
        #expect(error.contains("cannot create the stdout log \(spec.stdoutPath): Too many levels of symbolic links"))
        #expect(error.contains("cannot create the stderr log \(spec.stderrPath): No such device or address"))
        #expect(try scratch.read("target") == "untouched\n")
    }

    @Test func outputBeforeATimeoutIsInTheLogWhenRunReturns() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("ready")
        var spec = scratch.spec("sh", ["-c", "echo before; echo before-err >&2; sleep 100 & echo $$ > \(marker); wait"])
        spec.timeout = .milliseconds(300)
        let outcome = await LocalProcess.run(spec)
        #expect(outcome.timedOut && outcome.survivors == 0)
        #expect(try scratch.read("out") == "before\n")
        #expect(try scratch.read("err") == "before-err\n")
    }

    @Test func devNullNeedsNoPipe() async throws {
        let scratch = try Scratch()
        var spec = scratch.spec("sh", ["-c", "echo gone; echo kept >&2"])
        spec.stdoutPath = "/dev/null"
        #expect(await LocalProcess.run(spec).succeeded)
        #expect(try scratch.read("err") == "kept\n")
        spec.stderrPath = "/dev/null"
        let outcome = await LocalProcess.run(spec)
        #expect(outcome.succeeded && outcome.logError == nil)
    }

    @Test func directFilesFallbackCreatesBothFiles() async throws {
        let scratch = try Scratch()
        let pump = OutputPump(strategy: .directFiles)
        let outcome = await LocalProcess.run(scratch.spec("sh", ["-c", "echo to-out"]), monitor: .shared, pump: pump)
        #expect(outcome.succeeded)
        #expect(try scratch.read("out") == "to-out\n")
        #expect(try scratch.read("err") == "")
        var spec = scratch.spec("/bin/true")
        spec.stdoutPath = scratch.path("no-such-dir/out")
        let failed = await LocalProcess.run(spec, monitor: .shared, pump: pump)
        #expect(failed.termination == .failedToStart("cannot open the stdout log \(spec.stdoutPath): No such file or directory"))
    }

    // MARK: - Environment, arguments, signal state

    @Test func childSeesExactlyTheGivenEnvironment() async throws {
        let scratch = try Scratch()
        let environment = [
            "PATH": "/usr/bin:/bin",
            "OMNIBASE_STEP_ID": "build-1",
            "OMNIBASE_ODD": "spaces and\nnewline = equals",
            "EMPTY": "",
        ]
        var spec = scratch.spec("env", ["-0"])
        spec.environment = environment
        #expect(await LocalProcess.run(spec).termination == .exited(0))
        let entries = try scratch.readData("out").split(separator: 0, omittingEmptySubsequences: false).dropLast()
        let seen = Set(entries.map { String(decoding: $0, as: UTF8.self) })
        #expect(seen == Set(environment.map { "\($0.key)=\($0.value)" }))
    }

    @Test func argumentsArriveByteForByte() async throws {
        let scratch = try Scratch()
        let arguments = [
            "$(touch pwned)", "`touch pwned2`", "a b  c", "it's", "\"double\"", "line1\nline2", "", "*", "-n",
            "--", "tab\there", "back\\slash", "é ü ∑", ";exit 9",
        ]
        var spec = scratch.spec("sh", ["-c", #"printf '%s\0' "$0" "$@""#, "sh-name"] + arguments)
        spec.workingDirectory = scratch.root
        #expect(await LocalProcess.run(spec).termination == .exited(0))
        let expected = (["sh-name"] + arguments).map { Array($0.utf8) + [0] }.joined()
        #expect(try scratch.readData("out") == Data(expected))
        #expect(!FileManager.default.fileExists(atPath: scratch.path("pwned")))
        #expect(!FileManager.default.fileExists(atPath: scratch.path("pwned2")))
    }

    @Test func childSignalMaskIsEmptyAndDispositionsDefault() async throws {
        let scratch = try Scratch()
        // The engine ignores SIGPIPE (and a host application may ignore others): an ignored
        // disposition survives exec, so the spawn must reset it for the step.
        let previous = [SIGPIPE, SIGHUP, SIGUSR1].map { ($0, signal($0, SIG_IGN)) }
        defer { for (number, handler) in previous { signal(number, handler) } }
        let spec = scratch.spec("grep", ["-E", "^Sig(Blk|Ign):", "/proc/self/status"])
        // From a detached task, i.e. from a cooperative-pool thread with its signal mask.
        let outcome = await Task.detached { await LocalProcess.run(spec) }.value
        #expect(outcome.termination == .exited(0))
        let status = try scratch.read("out")
        #expect(status == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n")
    }

    @Test func aSpawningThreadNoLongerBlocksSigchld() throws {
        // Synchronous, so all of it runs on one thread, which blocks SIGCHLD as the cooperative
        // pool's threads do. A child's SIGCHLD is addressed to the thread that spawned it: blocked
        // there, it is queued and wakes another thread (the main thread) for nothing, once per step.
        var sigchld = sigset_t()
        sigemptyset(&sigchld)
        sigaddset(&sigchld, SIGCHLD)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &sigchld, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        let program = strdup("/bin/true")
        defer { free(program) }
        let argv: [UnsafeMutablePointer<CChar>?] = [program, nil]
        let envp: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        var pidfd: Int32 = -1
        var handle: UnsafeMutableRawPointer?
        #expect(omni_spawn_start("/bin/true", argv, envp, nil, null, null, &pid, &pidfd, &handle) == 0)
        var status: Int32 = 0
        #expect(SystemCallError.retryingOnInterrupt { waitpid(pid, &status, 0) } == pid)
        #expect(omni_wifexited(status) != 0 && omni_wexitstatus(status) == 0)
        #expect(omni_spawn_finish(handle) == 0)
        if pidfd >= 0 { close(pidfd) }
        var current = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &current)
        #expect(sigismember(&current, SIGCHLD) == 0, "SIGCHLD is still blocked in the spawning thread")
    }

    @Test func sigtermKillsAChildStartedFromATask() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("pid")
        let spec = scratch.spec("sh", ["-c", "echo $$ > \(marker); exec sleep 100"])
        let running = Task.detached { await LocalProcess.run(spec) }
        let pid = try #require(await scratch.waitForPid(marker))
        let clock = ContinuousClock()
        let start = clock.now
        kill(pid, SIGTERM)
        let outcome = await running.value
        #expect(outcome.termination == .signaled(SIGTERM))
        #expect(clock.now - start < .seconds(10), "the step sleeps 100 s")
    }

    // MARK: - Timeouts and teardown

    @Test func timeoutTearsDownTheWholeGroup() async throws {
        let scratch = try Scratch()
        let pidFile = scratch.path("grandchild")
        let marker = scratch.path("ready")
        var spec = scratch.spec("sh", ["-c", "sleep 100 & sleep 100 & echo $! > \(pidFile); echo $$ > \(marker); wait"])
        spec.timeout = .milliseconds(500)
        let running = Task { await LocalProcess.run(spec) }
        let leader = try #require(await scratch.waitForPid(marker))
        let grandchild = try #require(await scratch.waitForPid(pidFile))
        #expect(ProcessTable.entry(pid: grandchild)?.group == leader)
        let outcome = await running.value
        #expect(outcome.timedOut)
        #expect(!outcome.cancelled && !outcome.succeeded)
        #expect(outcome.pid == leader)
        #expect(outcome.survivors == 0)
        #expect(ProcessGroup(leader: leader).liveMembers().isEmpty)
        #expect(ProcessTable.entry(pid: grandchild)?.isAlive != true)
    }

    @Test func stepIgnoringSigtermIsKilledAfterTheGrace() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("ready")
        var spec = scratch.spec("sh", ["-c", "trap '' TERM; sleep 100 & echo $$ > \(marker); while :; do sleep 1; done"])
        spec.timeout = .milliseconds(500)
        spec.killGrace = .milliseconds(300)
        let clock = ContinuousClock()
        let start = clock.now
        let running = Task { await LocalProcess.run(spec) }
        let leader = try #require(await scratch.waitForPid(marker))
        let outcome = await running.value
        let elapsed = clock.now - start
        #expect(outcome.timedOut)
        #expect(outcome.termination == .signaled(SIGKILL))
        #expect(elapsed >= .milliseconds(800))
        #expect(outcome.survivors == 0)
        #expect(ProcessGroup(leader: leader).liveMembers().isEmpty)
    }

    @Test func stoppedStepIsContinuedAndTornDown() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("ready")
        // The TERM trap can only run once the shell is continued: exiting 7 proves the SIGCONT.
        var spec = scratch.spec("sh", ["-c", "trap 'exit 7' TERM; echo $$ > \(marker); kill -STOP $$; while :; do sleep 1; done"])
        spec.timeout = .seconds(2)
        spec.killGrace = .seconds(60)
        let running = Task { await LocalProcess.run(spec) }
        let leader = try #require(await scratch.waitForPid(marker))
        #expect(await scratch.waitUntil { ProcessTable.entry(pid: leader)?.state == UInt8(ascii: "T") }, "the step never stopped")
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await running.value
        #expect(outcome.timedOut)
        #expect(outcome.termination == .exited(7))
        #expect(clock.now - start < .seconds(20), "teardown waited for the 60 s grace instead of continuing the step")
        #expect(outcome.survivors == 0)
    }

    @Test func exitBeforeTimeoutIsNotATimeout() async throws {
        let scratch = try Scratch()
        var spec = scratch.spec("sh", ["-c", "exit 0"])
        spec.timeout = .seconds(30)
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await LocalProcess.run(spec)
        #expect(outcome.succeeded)
        #expect(clock.now - start < .seconds(20), "the timeout is 30 s")
    }

    @Test func backgroundProcessesOfASuccessfulStepAreLeftAlone() async throws {
        let scratch = try Scratch()
        let pidFile = scratch.path("daemon")
        let outcome = await LocalProcess.run(scratch.spec("sh", ["-c", "sleep 100 > /dev/null 2>&1 & echo $! > \(pidFile)"]))
        #expect(outcome.succeeded)
        let daemon = try #require(await scratch.waitForPid(pidFile))
        #expect(ProcessTable.entry(pid: daemon)?.isAlive == true)
        kill(daemon, SIGKILL)
    }

    // MARK: - Cancellation

    @Test func cancellationTearsDownPromptly() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("ready")
        let spec = scratch.spec("sh", ["-c", "echo $$ > \(marker); exec sleep 100"])
        let running = Task { await LocalProcess.run(spec) }
        let leader = try #require(await scratch.waitForPid(marker))
        let clock = ContinuousClock()
        let start = clock.now
        running.cancel()
        let outcome = await running.value
        #expect(clock.now - start < .seconds(10), "the step sleeps 100 s")
        #expect(outcome.cancelled)
        #expect(!outcome.timedOut && !outcome.succeeded)
        #expect(outcome.survivors == 0)
        #expect(ProcessGroup(leader: leader).liveMembers().isEmpty)
    }

    @Test func cancellationTearsDownAStepWithATimeout() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("ready")
        var spec = scratch.spec("sh", ["-c", "sleep 100 & echo $$ > \(marker); wait"])
        spec.timeout = .seconds(60)
        let running = Task { await LocalProcess.run(spec) }
        let leader = try #require(await scratch.waitForPid(marker))
        running.cancel()
        let outcome = await running.value
        #expect(outcome.cancelled && !outcome.timedOut)
        #expect(outcome.survivors == 0)
        #expect(ProcessGroup(leader: leader).liveMembers().isEmpty)
    }

    // MARK: - Many children

    @Test func manyConcurrentChildrenAllReturn() async throws {
        let scratch = try Scratch()
        let spec = scratch.spec("/bin/true")
        let outcomes = await withTaskGroup(of: ProcessOutcome.self, returning: [ProcessOutcome].self) { group in
            var started = 0
            var results: [ProcessOutcome] = []
            while started < 8 {
                group.addTask { await LocalProcess.run(spec) }
                started += 1
            }
            while let outcome = await group.next() {
                results.append(outcome)
                if started < 200 {
                    group.addTask { await LocalProcess.run(spec) }
                    started += 1
                }
            }
            return results
        }
        #expect(outcomes.count == 200)
        #expect(outcomes.allSatisfy { $0.termination == .exited(0) })
        // Only this test's children: other suites run in this process at the same time.
        let pids = Set(outcomes.compactMap(\.pid))
        let ourZombies = ProcessTable.entries().filter {
            $0.parent == getpid() && $0.state == UInt8(ascii: "Z") && pids.contains($0.pid)
        }
        #expect(ourZombies.isEmpty)
    }

    @Test func threadPerChildFallbackWorks() async throws {
        let scratch = try Scratch()
        let monitor = ProcessMonitor(strategy: .threadPerChild)
        #expect(await LocalProcess.run(scratch.spec("/bin/true"), monitor: monitor).termination == .exited(0))
        #expect(await LocalProcess.run(scratch.spec("sh", ["-c", "exit 4"]), monitor: monitor).termination == .exited(4))
        var spec = scratch.spec("sh", ["-c", "sleep 100 & wait"])
        spec.timeout = .milliseconds(200)
        let outcome = await LocalProcess.run(spec, monitor: monitor)
        #expect(outcome.timedOut && outcome.survivors == 0)
        // Only this test's children: other suites run in this process at the same time.
        let pids = Set([outcome.pid].compactMap { $0 })
        let ourZombies = ProcessTable.entries().filter {
            $0.parent == getpid() && $0.state == UInt8(ascii: "Z") && pids.contains($0.pid)
        }
        #expect(ourZombies.isEmpty)
    }

    // MARK: - The process table

    @Test func processTableParsesOddCommandNames() async throws {
        let scratch = try Scratch()
        let odd = scratch.path("a) (b c")
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: odd)
        let marker = scratch.path("ready")
        let spec = scratch.spec("sh", ["-c", "echo $$ > \(marker); exec \"$0\" 100", odd])
        let running = Task { await LocalProcess.run(spec) }
        let leader = try #require(await scratch.waitForPid(marker))
        #expect(await scratch.waitUntil { ProcessTable.entry(pid: leader)?.state == UInt8(ascii: "S") })
        let entry = try #require(ProcessTable.entry(pid: leader))
        #expect(entry.group == leader)
        #expect(entry.parent == getpid())
        running.cancel()
        #expect(await running.value.cancelled)
    }
}

/// A temporary directory for one test, with the log files of its specs; removed on deinit.
final class Scratch {
    let root: String

    init() throws {
        var template = Array("/tmp/omnibase-process-test.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemCallError(call: "mkdtemp", code: errno) }
        root = String(cString: made)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func path(_ name: String) -> String { "\(root)/\(name)" }

    /// A spec whose logs are `out` and `err` in this directory.
    func spec(_ command: String, _ arguments: [String] = []) -> ProcessSpec {
        ProcessSpec(command: command, arguments: arguments, stdoutPath: path("out"), stderrPath: path("err"))
    }

    func write(_ name: String, _ content: String, mode: Int) throws -> String {
        let file = path(name)
        try content.write(toFile: file, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
        return file
    }

    func read(_ name: String) throws -> String {
        try String(contentsOfFile: path(name), encoding: .utf8)
    }

    func readData(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path(name)))
    }

    func size(_ name: String) throws -> Int? {
        try FileManager.default.attributesOfItem(atPath: path(name))[.size] as? Int
    }

    /// Polls (every 5 ms, for at most 10 s) until `condition` holds.
    func waitUntil(_ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    /// Waits for a marker file holding one complete line with a pid (written by `echo $$ > file`).
    func waitForPid(_ file: String) async -> pid_t? {
        var pid: pid_t?
        _ = await waitUntil {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8), text.hasSuffix("\n") else { return false }
            pid = pid_t(text.dropLast())
            return true
        }
        return pid
    }
}

/// The engine's resident memory in KiB (`VmRSS` in `/proc/self/status`).
private func residentKilobytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return nil }
    return Int(line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
}

/// The environment a runner's steps inherit is encoded once and shared by every spawn
/// (``EncodedEnvironment``); each spawn adds or replaces its own entries.
@Suite("Child environment: a shared base and each spawn's own entries", .timeLimit(.minutes(1)))
struct ChildEnvironmentTests {
    /// The `NAME=VALUE` lines a step printed with `env`, run by `runner`.
    func environment(of step: Step, runner: LocalStepRunner) async throws -> [String] {
        let scratch = try Scratch()
        var context = AttemptContext(runID: "r-env", stepID: step.id, attempt: 1, killGrace: .seconds(1),
                                     logDirectory: scratch.root)
        context.outputPath = scratch.path("\(step.id).1.outputs")
        let outcome = await runner.run(step, context: context)
        #expect(outcome.result == .succeeded, "\(outcome.error ?? "")")
        let text = try String(contentsOfFile: context.stdoutPath, encoding: .utf8)
        return text.split(separator: "\n").map(String.init)
    }

    @Test func aStepsOwnEntryReplacesTheInheritedOneAndAppearsOnce() async throws {
        let runner = LocalStepRunner(environment: ["PATH": "/usr/bin:/bin", "SHARED": "base", "KEPT": "from base"])
        var command = ProcessCommand(command: "env")
        command.environment = ["SHARED": "step", "ADDED": "x=y"]
        let lines = try await environment(of: Step(id: "e", action: .process(command)), runner: runner)
        #expect(lines.filter { $0.hasPrefix("SHARED=") } == ["SHARED=step"], "\(lines)")
        #expect(lines.contains("KEPT=from base"))
        #expect(lines.contains("ADDED=x=y"))
        #expect(lines.contains("OMNIBASE_STEP_ID=e") && lines.contains("OMNIBASE_ATTEMPT=1"))
        #expect(lines.filter { $0.hasPrefix("PATH=") } == ["PATH=/usr/bin:/bin"])
        #expect(Set(lines).count == lines.count, "no entry twice")
    }

    @Test func anEmptyBaseGivesOnlyTheStepsOwnEntries() async throws {
        let runner = LocalStepRunner(environment: [:])
        let lines = try await environment(of: .process("e", "/usr/bin/env"), runner: runner)
        #expect(Set(lines.map { String($0.prefix { $0 != "=" }) })
            == ["OMNIBASE_RUN_ID", "OMNIBASE_STEP_ID", "OMNIBASE_ATTEMPT", "OMNIBASE_OUTPUT"], "\(lines)")
    }

    @Test func aBadInheritedEntryFailsEachAttemptBeforeTheSpawn() async throws {
        let scratch = try Scratch()
        let runner = LocalStepRunner(environment: ["PATH": "/usr/bin:/bin", "A=B": "x"])
        let context = AttemptContext(runID: "r-env", stepID: "s", attempt: 1, killGrace: .seconds(1), logDirectory: scratch.root)
        let step = Step.process("s", "sh", ["-c", "touch \(scratch.path("ran"))"])
        for _ in 0..<2 {
            let outcome = await runner.run(step, context: context)
            #expect(outcome.result == .failed)
            #expect(outcome.error == "invalid environment variable name: \"A=B\"")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path("ran")))
    }
}
