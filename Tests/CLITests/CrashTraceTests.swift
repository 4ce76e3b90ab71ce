import Foundation
import Glibc
import Testing
@testable import Orchestration

// Issue 11, items 2, 3 and 12 (first part): what a crashed engine leaves behind is accounted for
// (attempt numbers, logs), a state folder that lost its database is refused untouched, and the
// loser of two resumes names the engine that won.

/// One execution of a step, as the step itself recorded it.
private struct Execution: Hashable {
    var step: String
    var attempt: Int
    var pid: Int32
    var engine: Int32
}

/// Lines `<step> <attempt> <pid> <engine pid>` appended by the steps.
private func readExecutions(_ path: String) -> [Execution] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count == 4, let attempt = Int(fields[1]), let pid = Int32(fields[2]), let engine = Int32(fields[3]) else {
            return nil
        }
        return Execution(step: String(fields[0]), attempt: attempt, pid: pid, engine: engine)
    }
}

/// Whether `pid` is a live omnibase-agents process (guards against signalling a reused pid).
private func isEngine(_ pid: Int32) -> Bool {
    guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
          let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(close, offsetBy: 2)...].first
    return state != "Z" && String(decoding: cmdline, as: UTF8.self).contains("omnibase-agents")
}

/// Every file and folder below `path` with its kind, size, mode and modification time: equal
/// snapshots mean nothing was created, removed or written.
private func snapshot(_ path: String) -> [String: String] {
    var result: [String: String] = [:]
    var pending = [""]
    while let relative = pending.popLast() {
        let full = relative.isEmpty ? path : path + "/" + relative
        var status = stat()
        guard lstat(full, &status) == 0 else { continue }
        result[relative] = "\(status.st_mode) \(status.st_size) \(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)"
        if status.st_mode & S_IFMT == S_IFDIR {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: full)) ?? [] {
                pending.append(relative.isEmpty ? name : relative + "/" + name)
            }
        }
    }
    return result
}

/// Polls `condition` (bounded) until it holds.
private func waitUntil(seconds: Double = 20, _ condition: () -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("condition not met within \(seconds) s")
    return false
}

@Suite("Crash traces: attempt numbers after kill -9, a lost run history, the resume race", .serialized,
       .timeLimit(.minutes(5)))
struct CrashTraceTests {
    /// Item 2. Many short steps record each execution (step, OMNIBASE_ATTEMPT, pid, engine pid);
    /// the engine is `kill -9`ed at a random moment while steps are starting, then resumed.
    /// Executions whose start the dead engine had not committed yet must not share an attempt
    /// number with a later one, each must be one attempt row, and no log may be replaced.
    @Test func killNineWhileStepsStartNeverReusesAnAttemptNumberOrALog() async throws {
        let seed = ProcessInfo.processInfo.environment["CRASH_TRACE_SEED"].flatMap { UInt64($0) } ?? 0xA77E_3A75_0000_0002
        var generator = SplitMix64(seed: seed)
        let began = ContinuousClock.now
        var kills = 0, iteration = 0, lostBeforeRecorded = 0, executions = 0, rerun = 0
        while kills < 6 && iteration < 20 && ContinuousClock.now - began < .seconds(90) {
            iteration += 1
            let delay = Int.random(in: 0...60, using: &generator)
            let context = "seed \(seed), iteration \(iteration), kill \(delay) ms after the first step ran"
            let dir = TempDir()
            let folder = dir.path
            let state = folder + "/s"
            let marks = folder + "/executions"
            let steps = (0..<80).map { index in
                stepJSON("s\(index)", "echo \"$OMNIBASE_STEP_ID $OMNIBASE_ATTEMPT $$$$ $PPID\" >> \"$M\"; echo \"pid $$$$\"",
                         extra: "\"env\": {\"M\": \"\(marks)\"}")
            }
            let plan = dir.write("p.json", planJSON(steps, globals: "{\"max_concurrency\": 4}"))
            let running = Task { await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: folder) }
            _ = try await waitForFile(marks)
            let engine = try #require(readExecutions(marks).first?.engine, "\(context)")
            try await Task.sleep(for: .milliseconds(delay))
            if isEngine(engine) { kill(engine, SIGKILL) }
            let killed = await running.value
            guard killed.status == 128 + SIGKILL else {
                #expect(killed.status == 0, "\(context): \(killed.stderr)")
                continue
            }
            let runID = try #require(try FileManager.default.contentsOfDirectory(atPath: state + "/runs").first, "\(context)")
            // A kill that lands after the last commit finds a succeeded run: nothing to resume.
            let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: folder)
            if (try? shown.json())?["status"]?.stringValue == "succeeded" { continue }
            kills += 1
            let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: folder)
            #expect(resumed.status == 0, "\(context): resume exited \(resumed.status): \(resumed.stderr)")
            #expect((try? resumed.json())?["status"]?.stringValue == "succeeded", "\(context)")

            let ran = readExecutions(marks)
            executions += ran.count
            let database = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
            let rows = try database.query(
                "SELECT step_id, attempt, engine_lost, succeeded, error FROM attempts WHERE run_id = ?", runID)
            var rowByAttempt: [String: (lost: Bool, succeeded: Bool, error: String?)] = [:]
            for row in rows {
                rowByAttempt["\(row.string(0) ?? "") \(row.int(1))"] = (row.int(2) != 0, row.int(3) == 1, row.string(4))
            }
            for index in 0..<80 {
                let id = "s\(index)"
                let mine = ran.filter { $0.step == id }
                let numbers = mine.map(\.attempt)
                #expect(Set(numbers).count == numbers.count,
                        "\(context): \(id) ran more than once with one attempt number: \(mine)")
                if mine.count > 1 { rerun += 1 }
                for execution in mine {
                    #expect(rowByAttempt["\(id) \(execution.attempt)"] != nil,
                            "\(context): \(id) ran as attempt \(execution.attempt) (pid \(execution.pid)) but has no attempt row")
                }
                let succeeded = rows.filter { $0.string(0) == id && $0.int(3) == 1 }.map { $0.int(1) }
                #expect(succeeded.count == 1 && numbers.contains(succeeded[0]),
                        "\(context): \(id)'s succeeded attempt \(succeeded) is not one that ran (\(numbers))")
                #expect(succeeded.first == numbers.max(), "\(context): \(id) succeeded as \(succeeded), ran as \(numbers)")
            }
            // An attempt row that no step execution recorded was lost with the engine (the engine
            // may die between noting an attempt and starting it).
            for (key, row) in rowByAttempt where !ran.contains(where: { "\($0.step) \($0.attempt)" == key }) {
                #expect(row.lost, "\(context): attempt \(key) is recorded (\(row)) but never ran")
            }
            lostBeforeRecorded += rowByAttempt.values.filter {
                $0.lost && $0.error == "engine lost before the attempt's start was recorded"
            }.count
            // Each log holds the output of the execution its name says, and only that (an engine
            // killed between creating a log and writing the first chunk leaves it empty).
            let logs = "\(state)/runs/\(runID)/logs"
            for name in try FileManager.default.contentsOfDirectory(atPath: logs) where name.hasSuffix(".out") {
                let text = try String(contentsOfFile: logs + "/" + name, encoding: .utf8)
                let parts = name.dropLast(4).split(separator: ".")
                let owner = ran.first { "\($0.step).\($0.attempt)" == "\(parts[0]).\(parts[1])" }
                #expect(owner != nil && "pid \(owner!.pid)\n".hasPrefix(text),
                        "\(context): \(name) holds \(text.debugDescription), written by \(owner.map { "pid \($0.pid)" } ?? "no execution")")
            }
            // The lost attempts are in the run's events as they are in its rows.
            let events = await runCLI(["runs", "events", runID, "--format", "jsonl", "--state-dir", state], in: folder)
            #expect(events.status == 0, "\(context): \(events.stderr)")
            let lostEvents = try events.stdout.split(separator: "\n").map { try StrictJSONParser.parse(Array($0.utf8)).toValue() }
                .filter { $0["type"]?.stringValue == "step_attempt_failed" && $0["data"]?["engine_lost"]?.boolValue == true }
            #expect(lostEvents.count == rowByAttempt.values.filter(\.lost).count, "\(context)")
            if !lostEvents.isEmpty {
                let html = folder + "/report.html"
                let report = await runCLI(["report", runID, "--html", html, "--state-dir", state], in: folder)
                #expect(report.status == 0, "\(context): \(report.stderr)")
                #expect(((try? String(contentsOfFile: html, encoding: .utf8)) ?? "").contains("attempt engine-lost"),
                        "\(context): the HTML report shows no engine-lost attempt")
            }
        }
        print("kill -9 while starting: \(kills) of \(iteration) runs killed, \(executions) executions, \(rerun) steps ran "
              + "more than once, \(lostBeforeRecorded) attempts recorded engine-lost whose start had not been committed")
        #expect(kills >= 3, "only \(kills) of \(iteration) runs were still running at the kill")
        // The kills hit the group commit's window: executions the database had not heard of.
        #expect(lostBeforeRecorded > 0)
    }

    /// Item 2, each kind of trace alone: a log file (no journal line) and a leftover process
    /// (found by its OMNIBASE_* environment) of attempts the database never heard of are recorded
    /// as engine-lost attempts, the next attempt is numbered above them, and the log is kept.
    @Test func resumeRecordsAttemptsTracedByALogFileOrALeftoverProcessAndNumbersAboveThem() async throws {
        let dir = TempDir()
        let folder = dir.path
        let state = folder + "/s"
        _ = dir.write("fail", "")
        let plan = dir.write("p.json", planJSON([
            stepJSON("a.b", "if [ -e \"$D/fail\" ]; then exit 1; fi; echo \"ran $OMNIBASE_ATTEMPT\"",
                     extra: "\"env\": {\"D\": \"\(folder)\"}"),
        ]))
        let failed = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: folder)
        #expect(failed.status == 1, "\(failed.stderr)")
        let runID = try #require(try failed.json()["run_id"]?.stringValue)
        try FileManager.default.removeItem(atPath: folder + "/fail")
        // Attempt 2 left only its log; attempt 3 only a process, in a session of its own.
        let logs = "\(state)/runs/\(runID)/logs"
        #expect(FileManager.default.createFile(atPath: logs + "/a.b.2.out", contents: Data("attempt 2's output\n".utf8)))
        let leftover = await runProgram("sh", ["-c", "setsid sleep 60 > /dev/null 2>&1 < /dev/null & echo $!"], in: folder,
                                        environment: ["OMNIBASE_RUN_ID": runID, "OMNIBASE_STEP_ID": "a.b", "OMNIBASE_ATTEMPT": "3"])
        let sleeper = try #require(Int32(leftover.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(sleeper, SIGKILL) }
        _ = try await waitUntil { OrphanReaper.groups(ofRun: runID).values.contains(sleeper) }

        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: folder)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect((try? resumed.json())?.stepReport("a.b")?["attempts"]?.intValue == 4)
        let database = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
        let rows = try database.query(
            "SELECT attempt, engine_lost, succeeded, error FROM attempts WHERE run_id = ? ORDER BY attempt", runID)
        #expect(rows.map { $0.int(0) } == [1, 2, 3, 4])
        #expect(rows.map { $0.int(1) } == [0, 1, 1, 0])
        #expect(rows.map { $0.int(2) } == [0, 0, 0, 1])
        #expect(rows[1].string(3) == "engine lost before the attempt's start was recorded")
        #expect(try String(contentsOfFile: logs + "/a.b.2.out", encoding: .utf8) == "attempt 2's output\n")
        #expect(try String(contentsOfFile: logs + "/a.b.4.out", encoding: .utf8) == "ran 4\n")
        #expect(OrphanReaper.groups(ofRun: runID).isEmpty, "the leftover process survived the resume")
    }

    /// Item 3. A state folder with run folders but an empty or missing `runs.db` is refused
    /// (exit 74, naming the file) by run, resume and runs list, which touch nothing.
    @Test func anEmptiedOrMissingDatabaseBesideRunFoldersExits74AndTouchesNothing() async throws {
        for damage in ["empty", "missing"] {
            let dir = TempDir()
            let folder = dir.path
            let state = folder + "/s"
            let plan = dir.write("p.json", planJSON([stepJSON("a", "exit 1")]))
            let first = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: folder)
            #expect(first.status == 1, "\(first.stderr)")
            let runID = try #require(try first.json()["run_id"]?.stringValue)
            let database = state + "/runs.db"
            if damage == "empty" {
                #expect(truncate(database, 0) == 0)
            } else {
                #expect(unlink(database) == 0)
            }
            let before = snapshot(state)
            for arguments in [["run", plan], ["resume", runID], ["runs", "list"]] {
                let result = await runCLI(arguments + ["--state-dir", state], in: folder)
                let context = "\(damage) runs.db, \(arguments[0]) \(arguments[1])"
                #expect(result.status == 74, "\(context): exit \(result.status): \(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(context): \(result.stderr)")
                #expect(result.stderr.contains(database) && result.stderr.contains(damage), "\(context): \(result.stderr)")
                #expect(result.stdout.isEmpty, "\(context): \(result.stdout)")
                let after = snapshot(state)
                let added = Set(after.keys).symmetricDifference(before.keys).sorted()
                let changed = before.keys.filter { after[$0] != nil && after[$0] != before[$0] }.sorted()
                #expect(after == before, "\(context): the state folder changed: \(added) \(changed)")
            }
        }
        // A state folder without recorded runs is simply new: its first run creates runs.db (a
        // stage's hooks may have made a run folder already, without an events.jsonl).
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")]))
        try FileManager.default.createDirectory(atPath: dir.path + "/s/runs/r-hooks-first/hooks", withIntermediateDirectories: true)
        chmod(dir.path + "/s", 0o700)
        let fresh = await runCLI(["run", plan, "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(fresh.status == 0, "\(fresh.stderr)")
    }

    /// Item 12, first part. Two resumes of a crashed run at once: the refused one names the
    /// engine that won the lease, not the dead engine the run's record still names.
    @Test func theLoserOfTwoResumesOfACrashedRunNamesTheLiveEngine() async throws {
        let dir = TempDir()
        let folder = dir.path
        let state = folder + "/s"
        let plan = dir.write("p.json", planJSON([
            stepJSON("hold", "echo $PPID >> \"$D/engines\"; if [ -e \"$D/crashed\" ]; then sleep 2; else sleep 100; fi",
                     extra: "\"env\": {\"D\": \"\(folder)\"}"),
        ]))
        let running = Task { await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: folder) }
        let dead = try #require(Int32(try await waitForFile(folder + "/engines").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(isEngine(dead))
        kill(dead, SIGKILL)
        #expect(await running.value.status == 128 + SIGKILL)
        _ = dir.write("crashed", "")
        let runID = try #require(try FileManager.default.contentsOfDirectory(atPath: state + "/runs").first)

        async let a = runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: folder)
        async let b = runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: folder)
        let results = await [a, b]
        #expect(results.map(\.status).sorted() == [0, 75], "\(results.map { "\($0.status): \($0.stderr)" })")
        let engines = ((try? String(contentsOfFile: folder + "/engines", encoding: .utf8)) ?? "").split(separator: "\n")
        let winner = try #require(engines.last.flatMap { Int32($0) })
        #expect(winner != dead)
        let refused = try #require(results.first { $0.status == 75 })
        #expect(refused.stderr.contains("(engine pid \(winner))"), "winner \(winner), dead \(dead): \(refused.stderr)")
        #expect(!refused.stderr.contains("pid \(dead)"), "the dead engine \(dead) is named: \(refused.stderr)")
    }
}
