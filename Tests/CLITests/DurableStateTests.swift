import Foundation
import Glibc
import Testing
@testable import Orchestration

// Issue "Durable state": crash safety, resume, concurrency of engines on one state folder, and
// the state folder's failure modes (SPEC §2, §3, §5), end to end through the CLI.

// MARK: - Helpers

/// Runs any program (sh, sqlite3) with the test's environment, like `runCLI` runs the engine.
private func runTool(_ command: String, _ arguments: [String], in directory: String,
                     timeout: Duration = .seconds(60)) async -> CLIResult {
    var environment = ProcessInfo.processInfo.environment
    environment["NO_COLOR"] = "1"
    environment.removeValue(forKey: "OMNIBASE_STATE_DIR")
    let out = directory + "/.tool-\(UUID().uuidString).out"
    let err = directory + "/.tool-\(UUID().uuidString).err"
    let spec = ProcessSpec(command: command, arguments: arguments, environment: environment, workingDirectory: directory,
                           stdoutPath: out, stderrPath: err, timeout: timeout, killGrace: .seconds(2))
    let outcome = await LocalProcess.run(spec)
    defer {
        try? FileManager.default.removeItem(atPath: out)
        try? FileManager.default.removeItem(atPath: err)
    }
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

/// A read-only connection to a state folder's `runs.db`.
private func openHistory(_ state: String) throws -> SQLiteDatabase {
    try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
}

/// `step_id -> status` of a run, from the database.
private func stepStatuses(_ state: String, _ runID: String) throws -> [String: String] {
    let db = try openHistory(state)
    var result: [String: String] = [:]
    for row in try db.query("SELECT step_id, status FROM steps WHERE run_id = ?", runID) {
        result[row.string(0) ?? ""] = row.string(1) ?? ""
    }
    return result
}

/// One event as both stores hold it.
private struct StoredEvent: Equatable, CustomStringConvertible {
    var seq: Int
    var ts: String
    var type: String
    var stepID: String?
    var attempt: Int?
    var data: JSONValue?
    var description: String { "#\(seq) \(type) \(stepID ?? "-") \(attempt.map(String.init) ?? "-")" }
}

private func databaseEvents(_ state: String, _ runID: String) throws -> [StoredEvent] {
    let db = try openHistory(state)
    return try db.query("SELECT seq, ts, type, step_id, attempt, data FROM events WHERE run_id = ? ORDER BY seq", runID).map { row in
        StoredEvent(seq: row.int(0), ts: row.string(1) ?? "", type: row.string(2) ?? "", stepID: row.string(3),
                    attempt: row.isNull(4) ? nil : row.int(4),
                    data: row.string(5).flatMap { try? StrictJSONParser.parse(Array($0.utf8)).toValue() })
    }
}

private func fileEvents(_ state: String, _ runID: String) throws -> [StoredEvent] {
    let text = try String(contentsOfFile: "\(state)/runs/\(runID)/events.jsonl", encoding: .utf8)
    #expect(text.isEmpty || text.hasSuffix("\n"), "events.jsonl of \(runID) ends with a torn line")
    return try text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
        let value = try StrictJSONParser.parse(Array(line.utf8)).toValue()
        return StoredEvent(seq: value["seq"]?.intValue ?? -1, ts: value["ts"]?.stringValue ?? "",
                           type: value["type"]?.stringValue ?? "", stepID: value["step_id"]?.stringValue,
                           attempt: value["attempt"]?.intValue, data: value["data"])
    }
}

/// The invariants of a run's durable record: an intact database, seqs 1...N without gaps, at
/// most one `step_succeeded` per step, and an `events.jsonl` equal to the database's events.
private func expectConsistentRecord(_ state: String, _ runID: String, _ context: String,
                                    sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
    let db = try openHistory(state)
    #expect(try db.integrityCheck() == "ok", "\(context): integrity_check", sourceLocation: sourceLocation)
    let duplicates = try db.query("""
        SELECT step_id, count(*) FROM events WHERE run_id = ? AND type = 'step_succeeded' GROUP BY step_id HAVING count(*) > 1
        """, runID).map { "\($0.string(0) ?? "?") x\($0.int(1))" }
    #expect(duplicates.isEmpty, "\(context): steps that succeeded more than once: \(duplicates)", sourceLocation: sourceLocation)
    let stored = try databaseEvents(state, runID)
    #expect(stored.map(\.seq) == (0..<stored.count).map { $0 + 1 },
            "\(context): seqs are not 1...\(stored.count): \(stored.map(\.seq))", sourceLocation: sourceLocation)
    let lastSeq = try db.query("SELECT last_seq FROM runs WHERE run_id = ?", runID).first?.int(0)
    #expect(lastSeq == stored.count, "\(context): runs.last_seq \(lastSeq ?? -1) for \(stored.count) events",
            sourceLocation: sourceLocation)
    let file = try fileEvents(state, runID)
    let difference = zip(file, stored).first { $0 != $1 }.map { "\($0.0) vs \($0.1)" } ?? "length"
    #expect(file == stored, "\(context): events.jsonl differs from runs.db: file \(file.count) events, db \(stored.count); first difference: \(difference)",
            sourceLocation: sourceLocation)
}

/// Live (not zombie) processes whose environment has `OMNIBASE_RUN_ID=<runID>`.
private func processes(ofRun runID: String) -> [Int32] {
    let needle = Array("OMNIBASE_RUN_ID=\(runID)".utf8)
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap(Int32.init).filter { pid in
        guard pid != getpid(), let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        return environ.split(separator: 0).contains { Array($0) == needle } && isAlive(pid)
    }
}

/// Whether `pid` is a live omnibase-agents process (guards against signalling a reused pid).
private func isLiveEngine(_ pid: Int32) -> Bool {
    guard isAlive(pid), let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
    return String(decoding: cmdline, as: UTF8.self).contains("omnibase-agents")
}

/// Error output is one line (the SPEC's "one clear sentence").
private func expectOneLine(_ result: CLIResult, _ context: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    let lines = result.stderr.split(separator: "\n")
    #expect(lines.count == 1, "\(context): expected one line on stderr, got: \(result.stderr)", sourceLocation: sourceLocation)
    #expect(result.stderr.hasPrefix("omnibase-agents: error: "), "\(context): \(result.stderr)", sourceLocation: sourceLocation)
    if case .signaled(let signal) = result.termination {
        Issue.record("\(context): the engine crashed with signal \(signal)", sourceLocation: sourceLocation)
    }
}

private func permissions(_ path: String) -> mode_t? {
    var status = stat()
    guard lstat(path, &status) == 0 else { return nil }
    return status.st_mode & 0o7777
}

private func modificationTime(_ path: String) -> timespec? {
    var status = stat()
    guard lstat(path, &status) == 0 else { return nil }
    return status.st_mtim
}

private func bytes(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }

// `mount(2)` flags (sys/mount.h), spelled out so the test does not depend on how Glibc imports them.
private let msReadOnly: UInt = 1
private let msRemount: UInt = 32
private let mntDetach: Int32 = 2

/// Mounts a tmpfs at `path` (created if needed).
@discardableResult
private func mountTmpfs(_ path: String, options: String, readOnly: Bool = false) -> Bool {
    mkdir(path, 0o700)
    return mount("tmpfs", path, "tmpfs", readOnly ? msReadOnly : 0, options) == 0
}

private func remount(_ path: String, options: String, readOnly: Bool) -> Bool {
    mount("tmpfs", path, "tmpfs", msRemount | (readOnly ? msReadOnly : 0), options) == 0
}

private func unmount(_ path: String) {
    if umount2(path, 0) != 0 { _ = umount2(path, mntDetach) }
}

/// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, not in a restricted container).
private let canMountTmpfs: Bool = {
    var template = Array((NSTemporaryDirectory() + "omnibase-mount-probe-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { return false }
    let path = String(cString: made)
    defer { rmdir(path) }
    guard mountTmpfs(path, options: "size=64k,mode=0700") else { return false }
    let remounts = remount(path, options: "size=64k,mode=0700", readOnly: true)
    unmount(path)
    return remounts
}()

/// A plan step that appends `start`/`end` lines (engine pid and its own pid) to a shared log.
private func loggingStep(_ id: String, sleep: Double, deps: [String], log: String) -> String {
    stepJSON(id, "echo \"start \(id) $PPID $$$$\" >> \"$LOG\"; sleep \(sleep); echo \"end \(id) $PPID $$$$\" >> \"$LOG\"",
             deps: deps, extra: "\"env\": {\"LOG\": \"\(log)\"}")
}

/// One line of the shared step log.
private struct LogLine {
    var kind: String
    var step: String
    var engine: Int32
    var shell: Int32
}

private func readStepLog(_ path: String) -> [LogLine] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
        let parts = line.split(separator: " ")
        guard parts.count == 4, let engine = Int32(parts[2]), let shell = Int32(parts[3]) else { return nil }
        return LogLine(kind: String(parts[0]), step: String(parts[1]), engine: engine, shell: shell)
    }
}

// MARK: - Tests

@Suite("Durable state: crashes, resume, concurrent engines, state folder failures", .serialized, .timeLimit(.minutes(5)))
struct DurableStateTests {
    // 1.
    @Test func killNineAtRandomPointsThenResumeRunsOnlyWhatWasInFlight() async throws {
        let seed: UInt64 = 0x0D0B_A5E5_1DEA_0001
        var generator = SplitMix64(seed: seed)
        var killedIterations = 0
        var iteration = 0
        while killedIterations < 20 && iteration < 45 {
            iteration += 1
            let delay = Int.random(in: 0...900, using: &generator)
            let context = "seed \(seed), iteration \(iteration), kill \(delay) ms after the first step started"
            let dir = TempDir()
            let log = dir.path + "/steps.log"
            let state = dir.path + "/s"
            var steps: [String] = []
            for index in 0..<12 {
                var deps: Set<Int> = []
                if index > 2 {
                    for _ in 0..<Int.random(in: 0...2, using: &generator) { deps.insert(Int.random(in: 0..<index, using: &generator)) }
                }
                let sleep = Double(Int.random(in: 5...30, using: &generator)) / 100
                steps.append(loggingStep("s\(index)", sleep: sleep, deps: deps.sorted().map { "s\($0)" }, log: log))
            }
            let plan = dir.write("p.json", planJSON(steps, globals: "{\"max_concurrency\": 3}"))

            let running = Task { await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path) }
            let first = try await waitForFile(log)
            let engine = try #require(readStepLog(log).first?.engine, "\(context): first line \(first)")
            try await Task.sleep(for: .milliseconds(delay))
            if isLiveEngine(engine) { kill(engine, SIGKILL) }
            let killedRun = await running.value
            guard killedRun.status == 128 + SIGKILL else {
                // The run ended before the kill: it must simply have succeeded.
                #expect(killedRun.status == 0, "\(context): \(killedRun.stderr)")
                continue
            }
            killedIterations += 1

            // What the database says had succeeded when the engine died.
            let listed = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
            #expect(listed.status == 0, "\(context): runs list: \(listed.stderr)")
            let runID = try #require(try listed.json()["runs"]?[0]?["run_id"]?.stringValue, "\(context)")
            let atKill = try stepStatuses(state, runID)
            let succeededAtKill = Set(atKill.filter { $0.value == "succeeded" }.keys)

            let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
            #expect(resumed.status == 0, "\(context): resume: \(resumed.stderr)")
            #expect(try resumed.json()["status"]?.stringValue == "succeeded", "\(context)")
            #expect(try stepStatuses(state, runID).values.allSatisfy { $0 == "succeeded" }, "\(context)")

            let lines = readStepLog(log)
            let otherEngines = Set(lines.map(\.engine)).subtracting([engine])
            #expect(otherEngines.count <= 1, "\(context): steps ran under engines \(otherEngines) besides the killed \(engine)")
            let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path)
            let resumer = Int32(try shown.json()["engine_pid"]?.intValue ?? -1)
            #expect(otherEngines.isSubset(of: [resumer]), "\(context): runs show names engine \(resumer), steps saw \(otherEngines)")
            for index in 0..<12 {
                let id = "s\(index)"
                let byKilled = lines.filter { $0.step == id && $0.kind == "start" && $0.engine == engine }.count
                let byResumer = lines.filter { $0.step == id && $0.kind == "start" && $0.engine != engine }.count
                #expect(byKilled + byResumer >= 1, "\(context): \(id) never ran")
                #expect(byKilled <= 1 && byResumer <= 1, "\(context): \(id) started \(byKilled) + \(byResumer) times")
                if succeededAtKill.contains(id) {
                    #expect(byResumer == 0, "\(context): \(id) was recorded succeeded, yet resume ran it again")
                    #expect(lines.contains { $0.step == id && $0.kind == "end" && $0.engine == engine }, "\(context): \(id)")
                } else {
                    #expect(byResumer == 1, "\(context): \(id) was \(atKill[id] ?? "?") at the kill; resume ran it \(byResumer) times")
                    #expect(lines.contains { $0.step == id && $0.kind == "end" && $0.engine != engine }, "\(context): \(id)")
                }
                if byKilled + byResumer > 1 {
                    #expect(byKilled == 1 && !succeededAtKill.contains(id),
                            "\(context): \(id) ran twice but was not in flight at the kill")
                }
            }
            try expectConsistentRecord(state, runID, context)
            #expect(processes(ofRun: runID).isEmpty, "\(context): step processes still alive: \(processes(ofRun: runID))")
            for line in lines where line.engine == engine && line.kind == "start" {
                #expect(liveMembers(ofGroup: line.shell).isEmpty,
                        "\(context): step \(line.step) of the killed engine (group \(line.shell)) survived the resume")
            }
        }
        #expect(killedIterations >= 20, "only \(killedIterations) of \(iteration) runs were still running at the kill")
    }

    // 2.
    @Test func sigintThenResumeKeepsSucceededStepsAndContinuesAttempts() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        _ = dir.write("hold", "")
        let plan = dir.write("p.json", planJSON([
            stepJSON("q1", "echo \"q1 $OMNIBASE_ATTEMPT\" >> \"$D/ran.log\"", extra: env),
            stepJSON("q2", "echo \"q2 $OMNIBASE_ATTEMPT\" >> \"$D/ran.log\"", extra: env),
            stepJSON("long", "echo \"long $OMNIBASE_ATTEMPT\" >> \"$D/ran.log\"; echo $PPID > \"$D/engine.pid\"; "
                     + "if [ -e \"$D/hold\" ]; then sleep 100; fi", deps: ["q1", "q2"], extra: env),
            stepJSON("after", "echo \"after $OMNIBASE_ATTEMPT\" >> \"$D/ran.log\"", deps: ["long"], extra: env),
        ], globals: "{\"kill_grace_sec\": 0.5, \"max_concurrency\": 2}"))
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let engine = try #require(Int32(try await waitForFile(dir.path + "/engine.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        try await Task.sleep(for: .milliseconds(100))
        kill(engine, SIGINT)
        let interrupted = await run
        #expect(interrupted.status == 130, "\(interrupted.stderr)")
        let first = try interrupted.json()
        let runID = try #require(first["run_id"]?.stringValue)
        #expect(first["status"]?.stringValue == "cancelled")
        #expect(first.stepReport("q1")?["status"]?.stringValue == "succeeded")
        #expect(first.stepReport("long")?["status"]?.stringValue == "cancelled")
        #expect(try stepStatuses(state, runID)["long"] == "cancelled")

        try FileManager.default.removeItem(atPath: dir.path + "/hold")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let report = try resumed.json()
        #expect(report["run_id"]?.stringValue == runID)
        #expect(report["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("q1")?["attempts"]?.intValue == 1)
        #expect((report.stepReport("long")?["attempts"]?.intValue ?? 0) > 1, "attempt numbers continue after resume")
        #expect(report.stepReport("after")?["status"]?.stringValue == "succeeded")
        let ran = (dir.read("ran.log") ?? "").split(separator: "\n").map(String.init)
        #expect(ran.filter { $0.hasPrefix("q1 ") } == ["q1 1"], "succeeded steps are not run again: \(ran)")
        #expect(ran.filter { $0.hasPrefix("q2 ") } == ["q2 1"], "succeeded steps are not run again: \(ran)")
        #expect(ran.filter { $0.hasPrefix("long ") } == ["long 1", "long 2"], "\(ran)")
        #expect(ran.filter { $0.hasPrefix("after ") } == ["after 1"], "\(ran)")
        #expect(FileManager.default.fileExists(atPath: "\(state)/runs/\(runID)/logs/long.2.out"))
        try expectConsistentRecord(state, runID, "resumed run")

        let replayed = await runCLI(["replay", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(replayed.status == 0, "\(replayed.stderr)")
        let replay = try replayed.json()
        let newID = try #require(replay["run_id"]?.stringValue)
        #expect(newID != runID)
        #expect(replay["steps"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["q1", "q2", "long", "after"])
        let shown = await runCLI(["runs", "show", newID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(try shown.json()["run_id"]?.stringValue == newID)
        #expect(try shown.json()["status"]?.stringValue == "succeeded")
        try expectConsistentRecord(state, newID, "replayed run")
    }

    // 3.
    @Test func fourEnginesAtOnceOnOneStateFolder() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        var plans: [String] = []
        for engine in 0..<4 {
            let steps = (0..<60).map { index in
                let deps = index >= 4 ? "\"s\(index - 4)\"" : ""
                return "{\"id\": \"s\(index)\", \"command\": \"true\", \"depends_on\": [\(deps)]}"
            }
            plans.append(dir.write("p\(engine).json", planJSON(steps, globals: "{\"max_concurrency\": 4}", id: "P\(engine)")))
        }
        let (plan0, plan1, plan2, plan3, folder) = (plans[0], plans[1], plans[2], plans[3], dir.path)
        async let r0 = runCLI(["run", plan0, "--format", "json", "--state-dir", state], in: folder, timeout: .seconds(120))
        async let r1 = runCLI(["run", plan1, "--format", "json", "--state-dir", state], in: folder, timeout: .seconds(120))
        async let r2 = runCLI(["run", plan2, "--format", "json", "--state-dir", state], in: folder, timeout: .seconds(120))
        async let r3 = runCLI(["run", plan3, "--format", "json", "--state-dir", state], in: folder, timeout: .seconds(120))
        let results = await [r0, r1, r2, r3]
        var runIDs: [String] = []
        for (index, result) in results.enumerated() {
            #expect(result.status == 0, "engine \(index): \(result.stderr)")
            #expect(result.stderr.isEmpty, "engine \(index): \(result.stderr)")
            let report = try result.json()
            #expect(report["status"]?.stringValue == "succeeded")
            #expect(report["summary"]?["succeeded"]?.intValue == 60)
            runIDs.append(try #require(report["run_id"]?.stringValue))
        }
        #expect(Set(runIDs).count == 4)
        for runID in runIDs {
            try expectConsistentRecord(state, runID, "run \(runID)")
            #expect(try databaseEvents(state, runID).filter { $0.type == "step_succeeded" }.count == 60)
        }
        let listed = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(listed.status == 0, "\(listed.stderr)")
        let runs = try listed.json()["runs"]?.arrayValue ?? []
        #expect(Set(runs.compactMap { $0["run_id"]?.stringValue }) == Set(runIDs))
        #expect(runs.allSatisfy { $0["status"]?.stringValue == "succeeded" })
    }

    // 5.
    @Test func twoResumesOfOneRunAtOnceOneIsRefusedWith75() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        _ = dir.write("fail", "")
        let plan = dir.write("p.json", planJSON([
            stepJSON("first", "true"),
            stepJSON("slow", "if [ -e \"$D/fail\" ]; then exit 1; fi; sleep 1", deps: ["first"],
                     extra: "\"env\": {\"D\": \"\(dir.path)\"}"),
        ]))
        let failed = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(failed.status == 1, "\(failed.stderr)")
        let runID = try #require(try failed.json()["run_id"]?.stringValue)
        try FileManager.default.removeItem(atPath: dir.path + "/fail")

        let folder = dir.path
        async let a = runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: folder)
        async let b = runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: folder)
        let results = await [a, b]
        #expect(results.map(\.status).sorted() == [0, 75], "\(results.map { "\($0.status): \($0.stderr)" })")
        if let refused = results.first(where: { $0.status == 75 }) {
            expectOneLine(refused, "the refused resume")
            #expect(refused.stderr.contains(runID), "\(refused.stderr)")
            #expect(refused.stderr.contains("another live engine"), "\(refused.stderr)")
            #expect(refused.stdout.isEmpty)
        }
        if let winner = results.first(where: { $0.status == 0 }) {
            #expect(try winner.json()["status"]?.stringValue == "succeeded")
        }
        try expectConsistentRecord(state, runID, "resumed run")
    }

    // 6.
    @Test func anIncompatibleSchemaExits4AndLeavesTheFileAlone() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        mkdir(state, 0o700)
        let made = await runTool("/usr/bin/sqlite3", [state + "/runs.db",
                                 "PRAGMA journal_mode=WAL; CREATE TABLE future (x); PRAGMA user_version = 99;"], in: dir.path)
        #expect(made.status == 0, "\(made.stderr)")
        let before = try #require(bytes(state + "/runs.db"))
        let plan = dir.write("p.json", planJSON([stepJSON("a", "touch \"$D/ran\"", extra: "\"env\": {\"D\": \"\(dir.path)\"}")]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(result.status == 4, "\(result.stderr)")
        expectOneLine(result, "schema 99")
        #expect(result.stderr.contains("schema"), "\(result.stderr)")
        #expect(bytes(state + "/runs.db") == before, "runs.db was modified")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/ran"), "a step ran against an incompatible store")
        let listed = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(listed.status == 4, "\(listed.stderr)")
        expectOneLine(listed, "runs list on schema 99")
        #expect(bytes(state + "/runs.db") == before, "runs.db was modified")
    }

    @Test func aGarbageDatabaseExits74WithoutACrash() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        mkdir(state, 0o700)
        var generator = SplitMix64(seed: 74)
        let garbage = (0..<16_384).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(FileManager.default.createFile(atPath: state + "/runs.db", contents: Data(garbage)))
        let plan = dir.write("p.json", planJSON([stepJSON("a", "touch \"$D/ran\"", extra: "\"env\": {\"D\": \"\(dir.path)\"}")]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(result.status == 74, "\(result.stderr)")
        expectOneLine(result, "garbage runs.db")
        #expect(bytes(state + "/runs.db") == garbage, "the damaged runs.db was modified")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/ran"))
        let listed = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(listed.status == 74, "\(listed.stderr)")
        expectOneLine(listed, "runs list on garbage runs.db")
    }

    // 7.
    @Test(.enabled(if: canMountTmpfs, "needs to mount a tmpfs (root with CAP_SYS_ADMIN)"))
    func aReadOnlyStateFolderFailsCleanly() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("a", "touch \"$D/ran\"", extra: "\"env\": {\"D\": \"\(dir.path)\"}")]))
        let mountPoint = dir.path + "/ro"
        #expect(mountTmpfs(mountPoint, options: "size=1m,mode=0700", readOnly: true))
        defer { unmount(mountPoint) }

        // The state folder is the read-only mount itself: nothing inside can be created.
        let inside = await runCLI(["run", plan, "--format", "json", "--state-dir", mountPoint], in: dir.path)
        #expect(inside.status == 74, "\(inside.stderr)")
        expectOneLine(inside, "read-only state folder")
        #expect(inside.stderr.contains("cannot be written") || inside.stderr.contains("read-only"), "\(inside.stderr)")

        // The state folder would have to be created on the read-only mount.
        let below = await runCLI(["run", plan, "--format", "json", "--state-dir", mountPoint + "/state"], in: dir.path)
        #expect([74, 5].contains(below.status), "\(below.stderr)")
        expectOneLine(below, "uncreatable state folder")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/ran"), "a step ran without a writable state folder")

        // A state folder with history, made read-only afterwards.
        #expect(remount(mountPoint, options: "size=1m,mode=0700", readOnly: false))
        let first = await runCLI(["run", plan, "--format", "json", "--state-dir", mountPoint], in: dir.path)
        #expect(first.status == 0, "\(first.stderr)")
        try FileManager.default.removeItem(atPath: dir.path + "/ran")
        #expect(remount(mountPoint, options: "size=1m,mode=0700", readOnly: true))
        let again = await runCLI(["run", plan, "--format", "json", "--state-dir", mountPoint], in: dir.path)
        #expect(again.status == 74, "\(again.stderr)")
        expectOneLine(again, "read-only state folder with history")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/ran"), "a step ran without a writable state folder")
    }

    @Test(.enabled(if: canMountTmpfs, "needs to mount a tmpfs (root with CAP_SYS_ADMIN)"))
    func historyStaysReadableOnAReadOnlyStateFolder() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")]))
        let mountPoint = dir.path + "/ro"
        #expect(mountTmpfs(mountPoint, options: "size=1m,mode=0700"))
        defer { unmount(mountPoint) }
        let first = await runCLI(["run", plan, "--format", "json", "--state-dir", mountPoint], in: dir.path)
        #expect(first.status == 0, "\(first.stderr)")
        let runID = try #require(try first.json()["run_id"]?.stringValue)
        #expect(remount(mountPoint, options: "size=1m,mode=0700", readOnly: true))
        // Reading history writes nothing, so a read-only folder (a backup, a mounted image)
        // should still show it.
        let listed = await runCLI(["runs", "list", "--format", "json", "--state-dir", mountPoint], in: dir.path)
        #expect(listed.status == 0, "runs list on a read-only state folder: \(listed.stderr)")
        let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", mountPoint], in: dir.path)
        #expect(shown.status == 0, "runs show on a read-only state folder: \(shown.stderr)")
    }

    // 8.
    @Test(.enabled(if: canMountTmpfs, "needs to mount a tmpfs (root with CAP_SYS_ADMIN)"))
    func aFullDiskFailsWith74AndTheRunResumesOnceThereIsRoom() async throws {
        let dir = TempDir()
        let state = dir.path + "/full"
        #expect(mountTmpfs(state, options: "size=600k,mode=0700"))
        defer { unmount(state) }
        // The first step fills the disk through its own log but succeeds; recording what
        // follows cannot fit. The state folder failing is the engine's failure: exit 74, one
        // line, and nothing half-written.
        let plan = dir.write("p.json", planJSON([
            stepJSON("fill", "head -c 2000000 /dev/zero; true"),
            stepJSON("s1", "echo one", deps: ["fill"]),
            stepJSON("s2", "echo two", deps: ["s1"]),
            stepJSON("s3", "echo three", deps: ["s2"]),
            stepJSON("s4", "echo four", deps: ["s3"]),
        ], globals: "{\"max_concurrency\": 1}"))
        let full = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(full.status == 74, "\(full.stderr)")
        expectOneLine(full, "disk full")
        #expect(full.stderr.contains("full"), "\(full.stderr)")
        let runID = try #require(try FileManager.default.contentsOfDirectory(atPath: state + "/runs").first)
        #expect(try openHistory(state).integrityCheck() == "ok")

        #expect(remount(state, options: "size=20m,mode=0700", readOnly: false))
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try resumed.json()["status"]?.stringValue == "succeeded")
        #expect(try resumed.json()["summary"]?["succeeded"]?.intValue == 5)
        try expectConsistentRecord(state, runID, "resumed after disk full")
    }

    // 9.
    @Test func theStateFolderIsPrivateEvenUnderUmaskZero() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "echo out; echo err >&2"), stepJSON("b", "echo b", deps: ["a"])]))
        let result = await runTool("/bin/sh", ["-c", "umask 0; exec \"$@\"", "sh", cliPath, "run", plan, "--format", "json",
                                               "--state-dir", state], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let runID = try #require(try result.json()["run_id"]?.stringValue)
        #expect(permissions(state) == 0o700)
        let paths = try FileManager.default.subpathsOfDirectory(atPath: state)
        for name in ["runs.db", "runs/\(runID)/events.jsonl", "runs/\(runID)/logs/a.1.out", "runs/\(runID)/logs/a.1.err"] {
            #expect(paths.contains(name), "\(name) missing")
        }
        for relative in paths {
            let path = state + "/" + relative
            var status = stat()
            guard lstat(path, &status) == 0 else { continue }
            switch status.st_mode & S_IFMT {
            case S_IFDIR: #expect(status.st_mode & 0o7777 == 0o700, "\(relative) is \(String(status.st_mode & 0o7777, radix: 8))")
            case S_IFREG: #expect(status.st_mode & 0o7777 == 0o600, "\(relative) is \(String(status.st_mode & 0o7777, radix: 8))")
            default: Issue.record("\(relative) is neither a file nor a folder")
            }
        }
    }

    @Test func aSymlinkedDatabaseOrStateFolderIsRefusedWith5() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("a", "touch \"$D/ran\"", extra: "\"env\": {\"D\": \"\(dir.path)\"}")]))

        // runs.db is a link to a file elsewhere.
        let state = dir.path + "/s"
        mkdir(state, 0o700)
        let target = dir.write("precious.db", "do not touch\n")
        var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, target, &times, 0) == 0)
        let before = try #require(bytes(target))
        let mtimeBefore = try #require(modificationTime(target))
        #expect(symlink(target, state + "/runs.db") == 0)
        let linked = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(linked.status == 5, "\(linked.stderr)")
        expectOneLine(linked, "symlinked runs.db")
        #expect(linked.stderr.contains("symbolic link"), "\(linked.stderr)")
        #expect(bytes(target) == before)
        let mtimeAfter = modificationTime(target)
        #expect(mtimeAfter?.tv_sec == mtimeBefore.tv_sec && mtimeAfter?.tv_nsec == mtimeBefore.tv_nsec)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/ran"))

        // The state folder itself is a link.
        let real = dir.path + "/real"
        mkdir(real, 0o700)
        #expect(symlink(real, dir.path + "/link") == 0)
        let folderLink = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/link"], in: dir.path)
        #expect(folderLink.status == 5, "\(folderLink.stderr)")
        expectOneLine(folderLink, "symlinked state folder")
        #expect(try FileManager.default.contentsOfDirectory(atPath: real).isEmpty, "something was written through the link")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/ran"))
    }

    @Test func aSymlinkedEventsFileIsRefusedOnResume() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        _ = dir.write("fail", "")
        let plan = dir.write("p.json", planJSON([
            stepJSON("a", "if [ -e \"$D/fail\" ]; then exit 1; fi", extra: "\"env\": {\"D\": \"\(dir.path)\"}"),
        ]))
        let failed = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(failed.status == 1, "\(failed.stderr)")
        let runID = try #require(try failed.json()["run_id"]?.stringValue)
        try FileManager.default.removeItem(atPath: dir.path + "/fail")
        let events = "\(state)/runs/\(runID)/events.jsonl"
        let target = dir.write("elsewhere.txt", "not an event log\n")
        try FileManager.default.removeItem(atPath: events)
        #expect(symlink(target, events) == 0)
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 5, "\(resumed.stderr)")
        expectOneLine(resumed, "symlinked events.jsonl")
        #expect(dir.read("elsewhere.txt") == "not an event log\n")
    }
}
