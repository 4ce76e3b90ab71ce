import Foundation
@testable import Monitor
@testable import Presentation
import Testing
@testable import Orchestration

/// `report RUN_ID --html FILE` and `graph --run RUN_ID`, end to end: a real run with every
/// status, the page's content, a headless browser, and a 2,000-step run.
@Suite("report --html and graph --run", .serialized, .timeLimit(.minutes(5)))
struct ReportTests {
    // MARK: - A run with every status

    /// A run with succeeded, failed-with-retries, retried-then-succeeded, timed-out, skipped and
    /// cancelled steps (the engine gets SIGTERM while `package` runs).
    struct EveryStatusRun {
        let dir: TempDir
        let state: String
        let runID: String
        let plan: String
    }

    static func everyStatusRun() async throws -> EveryStatusRun {
        let dir = TempDir()
        let state = dir.path + "/s"
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            stepJSON("fetch", "echo 'fetched 214 files' >&2", extra: "\"name\": \"Fetch sources\""),
            stepJSON("build.release", "sleep 0.2; printf '\\033[33mwarning\\033[0m: unused x\\n' >&2", deps: ["fetch"]),
            stepJSON("lint", "echo 'src/a.swift:3: line too long' >&2; echo 'lint: <script>alert(1)</script>' >&2; exit 2",
                     deps: ["fetch"],
                     extra: "\"retries\": 1, \"retry_delay_sec\": 0.05, \"critical\": false, \"on_failure\": \"skip_dependents\""),
            stepJSON("lint-report", "true", deps: ["lint"]),
            stepJSON("unit-tests", "if [ \"$OMNIBASE_ATTEMPT\" -lt 3 ]; then echo \"attempt $OMNIBASE_ATTEMPT failed\" >&2; exit 1; fi",
                     deps: ["build.release"], extra: "\"retries\": 3, \"retry_delay_sec\": 0.05, \"retry_backoff\": \"fixed\""),
            stepJSON("integration", "echo 'waiting for db' >&2; sleep 10", deps: ["build.release"],
                     extra: "\"timeout_sec\": 0.5, \"critical\": false, \"on_failure\": \"continue\""),
            stepJSON("package", "echo $PPID > \"$D/engine.pid\"; sleep 30", deps: ["unit-tests", "integration"], extra: env),
            stepJSON("publish", "true", deps: ["package"]),
        ], globals: "{\"kill_grace_sec\": 0.5, \"max_concurrency\": 4}", id: "PLAN-EVERY"))
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let engine = try #require(Int32(try await waitForFile(dir.path + "/engine.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        try await Task.sleep(for: .milliseconds(200))
        kill(engine, SIGTERM)
        let result = await run
        #expect(result.status == 143, "\(result.stderr)")
        let report = try result.json()
        let runID = try #require(report["run_id"]?.stringValue)
        let expected = ["fetch": "succeeded", "build.release": "succeeded", "lint": "failed", "lint-report": "skipped",
                        "unit-tests": "succeeded", "integration": "failed", "package": "cancelled", "publish": "cancelled"]
        for (id, status) in expected {
            #expect(report.stepReport(id)?["status"]?.stringValue == status, "\(id)")
        }
        return EveryStatusRun(dir: dir, state: state, runID: runID, plan: plan)
    }

    static func attempts(state: String, runID: String) throws -> [RunStore.AttemptRecord] {
        let store = try RunStore(stateDirectory: try StateDirectory(path: state), readOnly: true)
        return try store.attempts(runID)
    }

    /// How many times `needle` occurs in `text`.
    static func occurrences(of needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    @Test func everyStatusRunMakesASelfContainedPageWithOneBarPerAttempt() async throws {
        let run = try await Self.everyStatusRun()
        let file = run.dir.path + "/report.html"
        let result = await runCLI(["report", run.runID, "--html", file, "--state-dir", run.state, "--format", "json"],
                                  in: run.dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try result.json()
        let page = try String(contentsOfFile: file, encoding: .utf8)
        #expect(summary["bytes"]?.intValue == page.utf8.count)

        // One bar per attempt, each with the class of how it ended.
        let attempts = try Self.attempts(state: run.state, runID: run.runID)
        #expect(attempts.count == 9)
        #expect(summary["attempts"]?.intValue == attempts.count)
        #expect(Self.occurrences(of: "<rect class=\"attempt ", in: page) == attempts.count)
        #expect(Self.occurrences(of: "class=\"attempt succeeded\"", in: page) == 3)
        #expect(Self.occurrences(of: "class=\"attempt failed\"", in: page) == 4)
        #expect(Self.occurrences(of: "class=\"attempt timed-out\"", in: page) == 1)
        #expect(Self.occurrences(of: "class=\"attempt cancelled\"", in: page) == 1)
        #expect(attempts.map(\.outcome).filter { $0 == .timedOut }.count == 1)

        // Self-contained: no script, nothing fetched, a policy that forbids both.
        #expect(!page.contains("<script"))
        #expect(!page.contains("http://") && !page.contains("https://"), "the page references the network")
        #expect(!page.contains("@import") && !page.contains("@font-face") && !page.contains("<link"))
        #expect(page.contains("Content-Security-Policy\" content=\"default-src 'none'"))

        // The stderr of a step is escaped, its ANSI colours removed.
        #expect(page.contains("lint: &lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(page.contains("warning: unused x"))
        #expect(!page.contains("\u{1B}"))

        // The step table: every step, its status, attempts, exit and error.
        for id in ["fetch", "build.release", "lint", "lint-report", "unit-tests", "integration", "package", "publish"] {
            #expect(page.contains("<tr class=\"step ") && page.contains("id=\"step-\(id)\""), "\(id)")
        }
        #expect(page.contains("<tr class=\"step failed retried\" id=\"step-lint\">"))
        #expect(page.contains("<tr class=\"step failed timed-out\" id=\"step-integration\">"))
        #expect(page.contains("<tr class=\"step skipped\" id=\"step-lint-report\">"))
        #expect(page.contains("<tr class=\"step cancelled\" id=\"step-publish\">"))
        #expect(page.contains("exited with code 2"))
        #expect(page.contains("timed out, SIGTERM") || page.contains("timed out, SIGKILL"))
        #expect(page.contains("Fetch sources"))
        #expect(page.contains("last attempt 2 · 2 lines"), "the tail of the last attempt")
        #expect(page.contains("failed attempt 1 · 2 lines"), "and of the earlier failed one")
        // The DAG: one labelled node per step and an edge per dependency.
        #expect(Self.occurrences(of: "<rect class=\"node ", in: page) == 8)
        #expect(Self.occurrences(of: "marker-end=\"url(#arrow)\"", in: page) == 8)

        // The same page on stdout with --html -.
        let stdout = await runCLI(["report", run.runID, "--html", "-", "--state-dir", run.state], in: run.dir.path)
        #expect(stdout.status == 0)
        #expect(Self.occurrences(of: "<rect class=\"attempt ", in: stdout.stdout) == attempts.count)

        // graph --run colours the nodes by final status (golden, run id replaced).
        let dot = await runCLI(["graph", "--run", run.runID, "--state-dir", run.state], in: run.dir.path)
        #expect(dot.status == 0, "\(dot.stderr)")
        #expect(dot.stdout.replacingOccurrences(of: run.runID, with: "RUN") == Self.goldenRunDOT)
        let mermaid = await runCLI(["graph", "--run", run.runID, "--state-dir", run.state, "--format", "mermaid"],
                                   in: run.dir.path)
        #expect(mermaid.status == 0, "\(mermaid.stderr)")
        #expect(mermaid.stdout.replacingOccurrences(of: run.runID, with: "RUN") == Self.goldenRunMermaid)
        if let dotPath = Self.tool("dot") {
            let input = run.dir.write("g.dot", dot.stdout)
            let svg = try await Self.runTool(dotPath, ["-Tsvg", "-o", run.dir.path + "/g.svg", input], in: run.dir.path)
            #expect(svg.status == 0, "dot: \(svg.stderr)")
        } else {
            print("ReportTests: graphviz's dot is not installed (apt-get install graphviz): skipping the dot -Tsvg check")
        }
    }

    static let goldenRunDOT = #"""
    // omnibase-agents graph of plan PLAN-EVERY, run RUN
    digraph "PLAN-EVERY" {
        rankdir=LR;
        node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#616161", fontname="Helvetica", fontsize=11];
        edge [color="#757575", arrowsize=0.7];
        "fetch" [label="Fetch sources\nsucceeded", fillcolor="#c8e6c9", color="#2e7d32", tooltip="fetch: succeeded"];
        "build.release" [label="build.release\nsucceeded", fillcolor="#c8e6c9", color="#2e7d32", tooltip="build.release: succeeded"];
        "lint" [label="lint\nfailed", fillcolor="#ffcdd2", color="#c62828", tooltip="lint: failed"];
        "lint-report" [label="lint-report\nskipped", fillcolor="#e0e0e0", color="#757575", tooltip="lint-report: skipped"];
        "unit-tests" [label="unit-tests\nsucceeded", fillcolor="#c8e6c9", color="#2e7d32", tooltip="unit-tests: succeeded"];
        "integration" [label="integration\nfailed", fillcolor="#ffcdd2", color="#c62828", tooltip="integration: failed"];
        "package" [label="package\ncancelled", fillcolor="#ffe0b2", color="#ef6c00", tooltip="package: cancelled"];
        "publish" [label="publish\ncancelled", fillcolor="#ffe0b2", color="#ef6c00", tooltip="publish: cancelled"];
        "fetch" -> "build.release";
        "fetch" -> "lint";
        "lint" -> "lint-report";
        "build.release" -> "unit-tests";
        "build.release" -> "integration";
        "unit-tests" -> "package";
        "integration" -> "package";
        "package" -> "publish";
    }

    """#

    static let goldenRunMermaid = #"""
    %% omnibase-agents graph of plan PLAN-EVERY, run RUN
    flowchart LR
        s0["Fetch sources<br/>succeeded"]
        s1["build.release<br/>succeeded"]
        s2["lint<br/>failed"]
        s3["lint-report<br/>skipped"]
        s4["unit-tests<br/>succeeded"]
        s5["integration<br/>failed"]
        s6["package<br/>cancelled"]
        s7["publish<br/>cancelled"]
        s0 --> s1
        s0 --> s2
        s2 --> s3
        s1 --> s4
        s1 --> s5
        s4 --> s6
        s5 --> s6
        s6 --> s7
        classDef succeeded fill:#c8e6c9,stroke:#2e7d32,color:#212121
        class s0,s1,s4 succeeded
        classDef failed fill:#ffcdd2,stroke:#c62828,color:#212121
        class s2,s5 failed
        classDef skipped fill:#e0e0e0,stroke:#757575,color:#212121
        class s3 skipped
        classDef cancelled fill:#ffe0b2,stroke:#ef6c00,color:#212121
        class s6,s7 cancelled

    """#

    /// The page in headless Chromium: no console message (script error, blocked request), one
    /// bar per attempt in the DOM it built, and a screenshot. Chromium comes from `.ci/run`
    /// (`apt-get install chromium`); without it this test is skipped.
    @Test(.enabled(if: Self.tool("chromium") != nil || Self.tool("chromium-browser") != nil,
                   "chromium is not installed (apt-get install chromium): the headless-browser checks are skipped"))
    func pageOpensInHeadlessChromiumWithoutConsoleErrors() async throws {
        let run = try await Self.everyStatusRun()
        let file = run.dir.path + "/report.html"
        let result = await runCLI(["report", run.runID, "--html", file, "--state-dir", run.state], in: run.dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let attempts = try Self.attempts(state: run.state, runID: run.runID)
        let browser = try await Self.chromium(["--dump-dom", "file://" + file], in: run.dir.path)
        #expect(browser.status == 0, "\(browser.stderr)")
        Self.expectNoConsoleMessages(browser.stderr)
        #expect(Self.occurrences(of: "class=\"attempt ", in: browser.stdout) == attempts.count)
        #expect(browser.stdout.contains("lint: &lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!browser.stdout.contains("<script"))

        let shot = run.dir.path + "/report.png"
        let screenshot = try await Self.chromium(["--hide-scrollbars", "--window-size=1320,1400", "--screenshot=" + shot,
                                                  "file://" + file], in: run.dir.path)
        #expect(screenshot.status == 0, "\(screenshot.stderr)")
        Self.expectNoConsoleMessages(screenshot.stderr)
        let png = try #require(FileManager.default.contents(atPath: shot))
        #expect(png.count > 10_000)
        #expect(Array(png.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
    }

    // MARK: - 2,000 steps

    /// A page that cannot be written says why in the system's words, from the failing call's
    /// error number (exit 2), and leaves nothing behind. Before, a folder gave "The operation
    /// could not be completed. (NSCocoaErrorDomain error 512.)" and /proc/version "The file
    /// doesn't exist." although it exists.
    @Test func aPageThatCannotBeWrittenSaysWhy() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")]))
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let runID = try #require(try run.json()["run_id"]?.stringValue)
        try FileManager.default.createDirectory(atPath: dir.path + "/adir", withIntermediateDirectories: false)
        let cases: [(output: String, message: String)] = [
            ("adir", "cannot write adir: it is a folder; name a file to write the page to"),
            ("adir/", "cannot write adir/: it is a folder; name a file to write the page to"),
            ("/proc/version", "cannot write /proc/version: No such file or directory (creating a file in /proc)"),
            ("nodir/r.html", "cannot write nodir/r.html: No such file or directory (creating a file in \(dir.path)/nodir)"),
        ]
        for (output, message) in cases {
            let result = await runCLI(["report", runID, "--html", output, "--state-dir", state], in: dir.path)
            #expect(result.status == 2, "\(output): \(result.stderr)")
            #expect(result.stderr == "omnibase-agents: error: \(message)\n", "\(output)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/adir").isEmpty)
        let written = await runCLI(["report", runID, "--html", "adir/r.html", "--state-dir", state], in: dir.path)
        #expect(written.status == 0, "\(written.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/adir") == ["r.html"])
    }

    @Test func twoThousandStepRunRendersAReadablePageOfSaneSize() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        // 20 levels of 100 `true` steps, each depending on one or two steps of the level before.
        var steps: [String] = []
        for level in 0..<20 {
            for index in 0..<100 {
                var deps: [String] = []
                if level > 0 {
                    deps.append("s\(level - 1).\(index)")
                    let other = (index * 7 + 3) % 100
                    if other != index { deps.append("s\(level - 1).\(other)") }
                }
                steps.append("{\"id\": \"s\(level).\(index)\", \"command\": \"true\", \"depends_on\": [\(deps.map { "\"\($0)\"" }.joined(separator: ","))]}")
            }
        }
        let plan = dir.write("big.json", planJSON(steps, globals: "{\"max_concurrency\": 64}", id: "BIG"))
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path, timeout: .seconds(240))
        #expect(run.status == 0, "\(run.stderr)")
        let runID = try #require(try run.json()["run_id"]?.stringValue)
        let file = dir.path + "/big.html"
        let started = ContinuousClock.now
        let result = await runCLI(["report", runID, "--html", file, "--state-dir", state], in: dir.path)
        let elapsed = ContinuousClock.now - started
        #expect(result.status == 0, "\(result.stderr)")
        let page = try String(contentsOfFile: file, encoding: .utf8)
        let size = page.utf8.count
        print("ReportTests: 2,000-step page: \(size / 1024) KiB, written in \(elapsed)")
        #expect(size < 5_000_000, "the page is \(size) bytes")
        #expect(elapsed < .seconds(30))
        let attempts = try Self.attempts(state: state, runID: runID)
        #expect(attempts.count >= 2000)
        #expect(Self.occurrences(of: "<rect class=\"attempt ", in: page) == attempts.count)
        // Compact forms: 2 px rows with hover titles, the DAG as cells in wrapped level columns.
        #expect(page.contains("2000 rows, 2 px each"))
        #expect(Self.occurrences(of: "<rect class=\"node succeeded\"", in: page) == 2000)
        #expect(page.contains("2000 steps as cells"))
        #expect(Self.occurrences(of: "<tr class=\"step ", in: page) == 2000)
        if Self.tool("chromium") != nil || Self.tool("chromium-browser") != nil {
            let browser = try await Self.chromium(["--dump-dom", "file://" + file], in: dir.path)
            #expect(browser.status == 0, "\(browser.stderr)")
            Self.expectNoConsoleMessages(browser.stderr)
            #expect(Self.occurrences(of: "class=\"attempt ", in: browser.stdout) == attempts.count)
        } else {
            print("ReportTests: chromium is not installed (apt-get install chromium): skipping the browser check of the 2,000-step page")
        }
    }

    // MARK: - Rendering details, in memory

    static func page(steps: [RunReport.StepReport], attempts: [RunStore.AttemptRecord],
                     logs: [String: HTMLReport.StepLog] = [:], names: [String: String] = [:]) throws -> String {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let report = RunReport(runID: "r-<x>", planID: "P&<b>", status: .failed, exitCode: 1, startedAt: start,
                               finishedAt: start.addingTimeInterval(10), steps: steps, traceID: "t", stage: nil)
        let graph = try PlanGraph(ids: steps.map(\.id), dependsOn: steps.map { _ in [] })
        return HTMLReport(report: report, names: names, graph: graph, attempts: attempts, logs: logs).render()
    }

    /// The part of a page between two markers.
    static func slice(_ page: String, from start: String, to end: String) throws -> Substring {
        let lower = try #require(page.range(of: start)).upperBound
        let upper = try #require(page.range(of: end, range: lower..<page.endIndex)).lowerBound
        return page[lower..<upper]
    }

    static func step(_ id: String, _ status: StepStatus = .succeeded) -> RunReport.StepReport {
        RunReport.StepReport(id: id, status: status, attempts: status == .pending ? 0 : 1, exitCode: nil, signal: nil,
                             timedOut: false, startedAt: nil, finishedAt: nil, error: nil)
    }

    static func attempt(_ id: String, from: Double, to: Double?, number: Int = 1) -> RunStore.AttemptRecord {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        return RunStore.AttemptRecord(stepID: id, attempt: number, startedAt: start.addingTimeInterval(from),
                                      finishedAt: to.map { start.addingTimeInterval($0) }, succeeded: true)
    }

    @Test func ganttRowsAreInStartOrderWithNeverStartedStepsLast() throws {
        // Plan order a, b, c, d, e; first starts: c at 0, e at 1, a at 3 (its retry at 6 does
        // not move it); b and d never started.
        let steps = [Self.step("a"), Self.step("b", .pending), Self.step("c"), Self.step("d", .pending), Self.step("e")]
        let plainStarts = [Self.attempt("a", from: 3, to: 4), Self.attempt("c", from: 0, to: 2), Self.attempt("e", from: 1, to: 5),
                           Self.attempt("a", from: 6, to: 7, number: 2)]
        let second = try Self.page(steps: steps, attempts: plainStarts)
        let rows2 = try Self.slice(second, from: "<svg class=\"rows\"", to: "</svg>")
        let sorted2 = ["a", "b", "c", "d", "e"].compactMap { id in rows2.range(of: "<title>\(id): ").map { (id, $0.lowerBound) } }
            .sorted { $0.1 < $1.1 }.map(\.0)
        #expect(sorted2 == ["c", "e", "a", "b", "d"])
    }

    @Test func concurrencyLaneShowsTheMostStepsRunningAtOnce() throws {
        // a [0,4], b [1,3], c [2,5]: three at once from 2 to 3; d starts when a ends (4), which
        // is not an overlap; e has no recorded end and runs to the frame's end (10 s).
        let steps = ["a", "b", "c", "d", "e"].map { Self.step($0) }
        let attempts = [Self.attempt("a", from: 0, to: 4), Self.attempt("b", from: 1, to: 3), Self.attempt("c", from: 2, to: 5),
                        Self.attempt("d", from: 4, to: 6), Self.attempt("e", from: 5.5, to: nil)]
        let page = try Self.page(steps: steps, attempts: attempts)
        #expect(page.contains("<svg class=\"lane\""))
        #expect(page.contains("data-max=\"3\""))
        #expect(page.contains(">max 3</text>"))
        let timeline = HTMLReport.Timeline(HTMLReport(report: RunReport(runID: "r", planID: "p", status: .succeeded, exitCode: 0,
                                                                        startedAt: Date(timeIntervalSince1970: 1_800_000_000),
                                                                        finishedAt: Date(timeIntervalSince1970: 1_800_000_010),
                                                                        steps: steps, traceID: "t", stage: nil),
                                                      graph: nil, attempts: attempts))
        #expect(timeline.maxConcurrency == 3)
        // The count over time: 1 (0 s), 2 (1 s), 3 (2 s), 2 (3 s), 2 (4 s: a ends, d starts), 1 (5 s), 2 (5.5 s), 1 (6 s), 0 (10 s).
        #expect(timeline.concurrency.map(\.count) == [1, 2, 3, 2, 2, 1, 2, 1, 0])
        #expect(timeline.concurrency.map(\.at) == [0, 1, 2, 3, 4, 5, 5.5, 6, 10])
    }

    @Test func aResumeIsAMarkedLineOnTheTimeline() throws {
        let steps = [Self.step("a")]
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let report = RunReport(runID: "r", planID: "p", status: .succeeded, exitCode: 0, startedAt: start,
                               finishedAt: start.addingTimeInterval(10), steps: steps, traceID: "t", stage: nil)
        var page = HTMLReport(report: report, graph: nil, attempts: [Self.attempt("a", from: 6, to: 9)])
        #expect(!page.renderContent().contains("class=\"resume"))
        page.resumedAt = [start.addingTimeInterval(5)]
        let html = page.render()
        #expect(Self.occurrences(of: "<line class=\"resume\"", in: html) == 2, "one line in the lane, one across the rows")
        #expect(Self.occurrences(of: ">resumed<title>", in: html) == 1)
    }

    @Test func aResumedRunsReportMarksTheResume() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        #expect(FileManager.default.createFile(atPath: dir.path + "/fail", contents: Data()))
        let plan = dir.write("p.json", planJSON([
            "{\"id\": \"first\", \"command\": \"true\"}",
            stepJSON("flaky", "test ! -e '\(dir.path)/fail'", deps: ["first"]),
        ], id: "R"))
        let failed = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(!failed.stdout.contains("command not found"))
        let runID = try #require(try failed.json()["run_id"]?.stringValue)
        let before = dir.path + "/before.html"
        #expect(await runCLI(["report", runID, "--html", before, "--state-dir", state], in: dir.path).status == 0)
        #expect(!(try String(contentsOfFile: before, encoding: .utf8)).contains(">resumed<"))
        // The monitor's page, loaded before the resume, learns of it from the events that follow.
        let directory = try StateDirectory(path: state)
        let store = try RunStore(stateDirectory: directory, readOnly: true)
        var live = try #require(try LiveRun.load(runID: runID, store: store, directory: directory))
        #expect(live.page.resumedAt.isEmpty)
        try FileManager.default.removeItem(atPath: dir.path + "/fail")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr) \(resumed.stdout)")
        _ = try live.update(store: store)
        #expect(live.page.resumedAt.count == 1)
        #expect(Self.occurrences(of: ">resumed<title>", in: live.page.renderContent()) == 1)
        let after = dir.path + "/after.html"
        let result = await runCLI(["report", runID, "--html", after, "--state-dir", state], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let page = try String(contentsOfFile: after, encoding: .utf8)
        #expect(Self.occurrences(of: ">resumed<title>resumed at ", in: page) == 1)
        #expect(Self.occurrences(of: "<line class=\"resume\"", in: page) == 2)
    }

    @Test func theDAGDrawsOnlyTheTransitiveReduction() throws {
        // a -> b, b -> c, a -> c: a -> c is implied by a -> b -> c; d -> c is necessary.
        let graph = try PlanGraph(ids: ["a", "b", "c", "d"], dependsOn: [[], ["a"], ["a", "b", "d"], []])
        #expect(graph.transitiveReduction == [[], [0], [1, 3], []])
        let steps = ["a", "b", "c", "d"].map { Self.step($0) }
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let report = RunReport(runID: "r", planID: "p", status: .succeeded, exitCode: 0, startedAt: start,
                               finishedAt: start.addingTimeInterval(1), steps: steps, traceID: "t", stage: nil)
        let page = HTMLReport(report: report, graph: graph, attempts: []).render()
        #expect(Self.occurrences(of: "<path class=\"edges\"", in: page) == 3)
        #expect(page.contains("edges implied by a longer path are left out (1 edge"))
    }

    /// A real build's shape (zstd's CMake build: 141 steps, most of them compiles on one level)
    /// keeps labelled boxes: the wide level wraps into columns of at most 40 boxes.
    @Test func aBuildSizedDAGKeepsLabelledBoxes() throws {
        var ids = ["configure"]
        var dependsOn: [[String]] = [[]]
        for index in 0..<135 { ids.append("compile-\(index).c.o"); dependsOn.append(["configure"]) }
        for index in 0..<5 {
            ids.append("link-\(index)")
            dependsOn.append((0..<135).filter { $0 % 5 == index }.map { "compile-\($0).c.o" })
        }
        let graph = try PlanGraph(ids: ids, dependsOn: dependsOn)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let report = RunReport(runID: "r", planID: "p", status: .succeeded, exitCode: 0, startedAt: start,
                               finishedAt: start.addingTimeInterval(1), steps: ids.map { Self.step($0) }, traceID: "t", stage: nil)
        let page = HTMLReport(report: report, graph: graph, attempts: []).render()
        #expect(!page.contains("as cells"), "141 steps are drawn as labelled boxes")
        #expect(Self.occurrences(of: "<text class=\"label\"", in: page) == 141)
        #expect(page.contains(">compile-134.c.o<") || page.contains("compile-134.c.o</text>"))
    }

    @Test func aThousandStepLayeredDAGDrawsABoundedNumberOfEdges() throws {
        // 10 levels of 100: each step depends on three steps of the level before and on its
        // counterpart in every earlier level (all implied): 2,700 necessary edges of 7,200.
        var ids: [String] = []
        var dependsOn: [[String]] = []
        for level in 0..<10 {
            for index in 0..<100 {
                ids.append("level\(level)/step-with-a-long-name-\(index)")
                guard level > 0 else { dependsOn.append([]); continue }
                var deps = (0..<3).map { "level\(level - 1)/step-with-a-long-name-\((index + $0) % 100)" }
                deps += (0..<(level - 1)).map { "level\($0)/step-with-a-long-name-\(index)" }
                dependsOn.append(deps)
            }
        }
        let graph = try PlanGraph(ids: ids, dependsOn: dependsOn)
        let all = graph.dependencies.reduce(0) { $0 + $1.count }
        let kept = graph.transitiveReduction.reduce(0) { $0 + $1.count }
        #expect(all == 2_700 + 3_600)
        #expect(kept == 2_700)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let report = RunReport(runID: "r", planID: "p", status: .succeeded, exitCode: 0, startedAt: start,
                               finishedAt: start.addingTimeInterval(1), steps: ids.map { Self.step($0) }, traceID: "t", stage: nil)
        let page = HTMLReport(report: report, graph: graph, attempts: []).render()
        let path = try Self.slice(page, from: "<path class=\"edges\" stroke-width=\"0.6\"", to: "/>")
        #expect(Self.occurrences(of: "M", in: String(path)) == 2_700)
        #expect(page.contains("(3600 edges, like a→c"))
    }

    @Test func longDAGLabelsKeepBothEnds() {
        #expect(HTMLReport.middleTruncated("CMakeFiles/libzstd_static.dir/compress/zstd_compress.c.o", to: 21)
                == "CMakeF…d_compress.c.o")
        #expect(HTMLReport.middleTruncated("short", to: 21) == "short")
    }

    @Test func engineLostAndUnfinishedAttemptsHaveTheirOwnBars() throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let steps = [RunReport.StepReport(id: "a", status: .running, attempts: 2, exitCode: nil, signal: nil, timedOut: false,
                                          startedAt: start, finishedAt: nil, error: nil)]
        let attempts = [
            RunStore.AttemptRecord(stepID: "a", attempt: 1, startedAt: start, finishedAt: start.addingTimeInterval(2),
                                   engineLost: true, succeeded: false, error: "engine lost while the attempt ran"),
            RunStore.AttemptRecord(stepID: "a", attempt: 2, startedAt: start.addingTimeInterval(5), finishedAt: nil),
        ]
        let page = try Self.page(steps: steps, attempts: attempts)
        #expect(page.contains("class=\"attempt engine-lost\""))
        #expect(page.contains("class=\"attempt running\""))
        #expect(page.contains("<line class=\"wait\""), "the wait between the attempts is drawn")
        #expect(page.contains("Run <span class=\"mono\">r-&lt;x&gt;</span>"))
        #expect(page.contains("P&amp;&lt;b&gt;"))
    }

    @Test func textFromThePlanAndTheStoreIsEscaped() throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let steps = [RunReport.StepReport(id: "x", status: .failed, attempts: 1, exitCode: 1, signal: nil, timedOut: false,
                                          startedAt: start, finishedAt: start.addingTimeInterval(1),
                                          error: "<img src=x onerror=alert(1)>")]
        let attempts = [RunStore.AttemptRecord(stepID: "x", attempt: 1, startedAt: start, finishedAt: start.addingTimeInterval(1),
                                               exitCode: 1, succeeded: false, error: "\"quoted\" <b>")]
        let tail = LogTail(text: "</pre><script>alert(1)</script>", lineCount: 1, truncated: false, fileSize: 30)
        let page = try Self.page(steps: steps, attempts: attempts,
                                 logs: ["x": HTMLReport.StepLog(attempt: 1, path: "runs/r/logs/x.1.err", tail: tail)],
                                 names: ["x": "<i>name</i>"])
        #expect(!page.contains("<img") && !page.contains("<script") && !page.contains("<i>name"))
        #expect(page.contains("&lt;img src=x onerror=alert(1)&gt;"))
        #expect(page.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(page.contains("&lt;i&gt;name&lt;/i&gt;"))
        #expect(page.contains("&quot;quoted&quot; &lt;b&gt;"))
    }

    @Test func logTailKeepsTheLastLinesCleanAndBounded() throws {
        let dir = TempDir()
        #expect(LogTail.read(path: dir.path + "/absent.err") == nil, "an absent log is empty")
        _ = dir.write("empty.err", "")
        #expect(LogTail.read(path: dir.path + "/empty.err") == nil)
        let lines = (1...100).map { "line \($0)" }.joined(separator: "\n") + "\n"
        _ = dir.write("long.err", lines)
        let tail = try #require(LogTail.read(path: dir.path + "/long.err", maxLines: 20, maxBytes: 4096))
        #expect(tail.lineCount == 20 && tail.truncated)
        #expect(tail.text.hasPrefix("line 81\n") && tail.text.hasSuffix("line 100"))
        // A byte cap cuts at a line start.
        let capped = try #require(LogTail.read(path: dir.path + "/long.err", maxLines: 20, maxBytes: 30))
        #expect(capped.truncated && capped.text.hasSuffix("line 100") && !capped.text.contains("line 9\n"))
        #expect(capped.text.split(separator: "\n").allSatisfy { $0.hasPrefix("line ") })
        // ANSI colours, carriage-return redraws and invalid UTF-8.
        var bytes = Array("\u{1B}[31merror\u{1B}[0m: red\n10%\r50%\r100%\nbad ".utf8)
        bytes += [0xFF, 0xFE]
        bytes += Array(" byte\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: dir.path + "/mixed.err"))
        let mixed = try #require(LogTail.read(path: dir.path + "/mixed.err"))
        #expect(mixed.text == "error: red\n100%\nbad \u{FFFD}\u{FFFD} byte")
        // A symbolic link is not followed.
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/link.err", withDestinationPath: dir.path + "/long.err")
        #expect(LogTail.read(path: dir.path + "/link.err") == nil)
    }

    @Test func axisTicksAreRound() {
        #expect(HTMLReport.ticks(span: 3.37) == [0, 0.5, 1, 1.5, 2, 2.5, 3])
        #expect(HTMLReport.ticks(span: 600).count <= 11)
        #expect(HTMLReport.axisLabel(90, step: 30) == "1m30s")
        #expect(HTMLReport.axisLabel(0.25, step: 0.05) == "0.25s")
        #expect(HTMLReport.ganttRowHeight(steps: 9) == 22)
        #expect(HTMLReport.ganttRowHeight(steps: 2000) == 2)
    }

    // MARK: - Errors

    @Test func badArgumentsAndUnknownRunsExitAsSpecified() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        // No history yet: the run is unknown.
        let none = await runCLI(["report", "r-nope", "--html", dir.path + "/x.html", "--state-dir", state], in: dir.path)
        #expect(none.status == 3, "\(none.stderr)")
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")]))
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let runID = try #require(try run.json()["run_id"]?.stringValue)
        let unknown = await runCLI(["report", "r-nope", "--html", dir.path + "/x.html", "--state-dir", state], in: dir.path)
        #expect(unknown.status == 3)
        #expect(unknown.stderr.contains("no run r-nope"))
        let noFile = await runCLI(["report", runID, "--state-dir", state], in: dir.path)
        #expect(noFile.status == 2)
        #expect(noFile.stderr.contains("--html"))
        let unwritable = await runCLI(["report", runID, "--html", dir.path + "/missing/dir/x.html", "--state-dir", state],
                                      in: dir.path)
        #expect(unwritable.status == 2)
        #expect(unwritable.stderr.contains("cannot write"))
        let human = await runCLI(["report", runID, "--html", dir.path + "/ok.html", "--state-dir", state, "--format", "human"],
                                 in: dir.path)
        #expect(human.status == 0)
        #expect(human.stdout.hasPrefix("Wrote "))

        let graphUnknown = await runCLI(["graph", "--run", "r-nope", "--state-dir", state], in: dir.path)
        #expect(graphUnknown.status == 3)
        let bad = dir.write("bad.json", "{\"plan_id\": \"x\", \"version\": \"1\", \"steps\": [{\"id\": \"a\", \"command\": \"true\", \"depends_on\": [\"zz\"]}]}")
        let graphBad = await runCLI(["graph", bad], in: dir.path)
        #expect(graphBad.status == 2)
        #expect(graphBad.stderr.contains("unknown step \"zz\""))
        let both = await runCLI(["graph", plan, "--run", runID, "--state-dir", state], in: dir.path)
        #expect(both.status == 2)
        let badFormat = await runCLI(["graph", plan, "--format", "json"], in: dir.path)
        #expect(badFormat.status == 2)
        // A --var the plan never uses is a typo (issue 11, item 8).
        let unusedVariable = await runCLI(["graph", plan, "--var", "X=1"], in: dir.path)
        #expect(unusedVariable.status == 2)
        #expect(unusedVariable.stderr.contains("does not use a variable X"))
        let plain = await runCLI(["graph", plan], in: dir.path)
        #expect(plain.status == 0)
        #expect(plain.stdout.contains("digraph \"T\" {"))
        #expect(plain.stdout.contains("\"a\" [label=\"a\"];"))
    }

    @Test func aSnapshotThatNoLongerLoadsLeavesTheDAGOut() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "echo hi >&2"), stepJSON("b", "true", deps: ["a"])]))
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let runID = try #require(try run.json()["run_id"]?.stringValue)
        do {
            let database = try SQLiteDatabase(path: state + "/runs.db", mode: .readWrite)
            try database.write { db in
                try db.run("UPDATE runs SET plan_snapshot = ? WHERE run_id = ?", Array("{".utf8), runID)
            }
        }
        let file = dir.path + "/r.html"
        let report = await runCLI(["report", runID, "--html", file, "--state-dir", state], in: dir.path)
        #expect(report.status == 0, "\(report.stderr)")
        let page = try String(contentsOfFile: file, encoding: .utf8)
        #expect(page.contains("The stored plan snapshot does not load"))
        #expect(page.contains("The plan&#39;s DAG is not available") || page.contains("The plan's DAG is not available"))
        #expect(Self.occurrences(of: "<rect class=\"attempt ", in: page) == 2)
        #expect(page.contains("hi</pre>"))
        // graph --run needs the plan: a snapshot that does not load is a bad plan.
        let graph = await runCLI(["graph", "--run", runID, "--state-dir", state], in: dir.path)
        #expect(graph.status == 2)
        #expect(graph.stderr.contains("invalid JSON"))
    }

    // MARK: - Tools

    /// An executable on PATH.
    static func tool(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func runTool(_ command: String, _ arguments: [String], in directory: String,
                        timeout: Duration = .seconds(90)) async throws -> (status: Int32, stdout: String, stderr: String) {
        let result = await runProgram(command, arguments, in: directory, timeout: timeout)
        return (result.status, result.stdout, result.stderr)
    }

    /// Headless Chromium with console logging on stderr and a throwaway profile.
    static func chromium(_ arguments: [String], in directory: String) async throws -> (status: Int32, stdout: String, stderr: String) {
        let path = try #require(tool("chromium") ?? tool("chromium-browser"))
        let profile = directory + "/.chromium-profile"
        return try await runTool(path, ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                                        "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0"] + arguments,
                                 in: directory)
    }

    /// Chromium logs page console messages (script errors, blocked requests) as `:CONSOLE` lines.
    static func expectNoConsoleMessages(_ log: String) {
        let console = log.split(separator: "\n").filter { $0.contains(":CONSOLE") || $0.contains("Uncaught") }
        #expect(console.isEmpty, "console messages: \(console.joined(separator: "\n"))")
    }
}
