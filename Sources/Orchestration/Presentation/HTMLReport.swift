import Foundation
import Orchestration

/// A run as one self-contained HTML page: a Gantt timeline of every attempt, the DAG laid out by
/// levels, and a table of the steps with the tail of each one's stderr.
///
/// The page needs nothing else: CSS and SVG are inline, there is no script and no font or image
/// to fetch, and a Content-Security-Policy forbids both. Everything that comes from the plan, the
/// store or the logs is HTML-escaped.
///
/// It stays readable for large runs: the timeline's rows and the DAG's nodes shrink (labels
/// give way to hover titles), a DAG level with many steps wraps into several columns, the edges
/// drawn are capped (``Limits/maxEdges``), and the stderr tails share a byte budget, failed
/// steps first.
///
/// ```swift
/// let report = try HTMLReport.load(runID: id, stateDirectory: directory, store: store)
/// try report.render().write(toFile: "report.html", atomically: true, encoding: .utf8)
/// ```
public struct HTMLReport: Sendable {
    /// Size limits of a page.
    public struct Limits: Sendable, Hashable {
        /// The most lines of stderr shown per step.
        public var tailLines: Int
        /// The most bytes of stderr read per step.
        public var tailBytes: Int
        /// The most bytes of stderr in the whole page; failed steps' tails are taken first.
        public var totalTailBytes: Int
        /// The most DAG edges drawn.
        public var maxEdges: Int
        /// Whether each step's stdout tail is shown beside its stderr (the live monitor's pages).
        public var includeStdout: Bool

        /// Creates limits.
        public init(tailLines: Int = 20, tailBytes: Int = 4096, totalTailBytes: Int = 1_000_000, maxEdges: Int = 6000,
                    includeStdout: Bool = false) {
            self.tailLines = tailLines
            self.tailBytes = tailBytes
            self.totalTailBytes = totalTailBytes
            self.maxEdges = maxEdges
            self.includeStdout = includeStdout
        }
    }

    /// The stderr of a step's last attempt, and of the attempts before it that failed.
    public struct StepLog: Sendable, Hashable {
        /// The attempt whose log this is.
        public var attempt: Int
        /// The log's path relative to the state folder.
        public var path: String
        /// Its last lines; nil when the log is empty or absent, or was left out.
        public var tail: LogTail?
        /// Whether the tail was left out to keep the page small.
        public var omitted: Bool
        /// Whether the tail was left out because the run's secret values are not all known, so
        /// it could not be masked.
        public var withheld: Bool
        /// The last lines of the attempt's stdout, when ``Limits/includeStdout`` asked for them.
        public var stdoutTail: LogTail?
        /// The stderr of each earlier attempt that failed (timed out, lost its engine), oldest
        /// first: after retries or a resume, the first error is often the one that explains the
        /// rest. Attempts left out by the page's byte budget are absent.
        public var earlierFailures: [StepLog] = []

        /// Creates a step log.
        public init(attempt: Int, path: String, tail: LogTail?, omitted: Bool = false, withheld: Bool = false,
                    stdoutTail: LogTail? = nil) {
            self.attempt = attempt
            self.path = path
            self.tail = tail
            self.omitted = omitted
            self.withheld = withheld
            self.stdoutTail = stdoutTail
        }
    }

    /// The run's report (steps in plan order).
    public var report: RunReport
    /// Step names by step id (steps with a `name`).
    public var names: [String: String]
    /// The plan's DAG, steps in the same order as ``report``; nil when the snapshot did not load.
    public var graph: PlanGraph?
    /// Every attempt.
    public var attempts: [RunStore.AttemptRecord]
    /// The stderr of each step's last attempt, by step id.
    public var logs: [String: StepLog]
    /// Remarks shown at the top (what could not be shown and why).
    public var notes: [String]
    /// When the page was made.
    public var generatedAt: Date
    /// Size limits.
    public var limits: Limits
    /// Set while the run is live (the monitor): the timeline's frame runs to this moment, so
    /// running attempts' bars reach it, and the header's duration is the time since the start.
    public var liveUntil: Date?
    /// When the run was resumed (its `run_resumed` events): the timeline marks each one.
    public var resumedAt: [Date] = []
    /// How the tails are masked; tails read again later (the monitor) go through it too.
    public var logMasking = LogMasking.none

    /// Creates a page from data already at hand.
    public init(report: RunReport, names: [String: String] = [:], graph: PlanGraph?, attempts: [RunStore.AttemptRecord],
                logs: [String: StepLog] = [:], notes: [String] = [], generatedAt: Date = Date(), limits: Limits = Limits()) {
        self.report = report
        self.names = names
        self.graph = graph
        self.attempts = attempts
        self.logs = logs
        self.notes = notes
        self.generatedAt = generatedAt
        self.limits = limits
    }

    /// Reads a stored run: its report, plan snapshot, attempts and stderr logs.
    ///
    /// A snapshot that no longer loads, or whose steps differ from the stored ones, leaves the DAG
    /// out (with a note) rather than failing.
    ///
    /// The page is meant to be shared: the run's secret values (``SecretMask``) are masked in
    /// everything that comes from the run (errors, names, log tails). The values of secret
    /// `--var`s are not stored; without them in `secrets`, the log tails are left out (with a
    /// note naming the variables) rather than shown unmasked.
    /// - Parameters:
    ///   - secrets: values of the run's withheld secret variables.
    ///   - environment: where names listed in `globals.secrets` that the plan does not define
    ///     take their values.
    /// - Throws: ``EngineError``: exit 3 for an unknown run, 74 when the store cannot be read, 2
    ///   when `secrets` names a variable whose value the run stored.
    public static func load(runID: String, stateDirectory: StateDirectory, store: RunStore,
                            limits: Limits = Limits(), secrets: [String: String] = [:],
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(EngineError) -> HTMLReport {
        guard let record = try store.run(runID), var report = try store.report(runID) else {
            throw EngineError(.unknownReference, "no run \(runID) in \(stateDirectory.path)")
        }
        var source = record.source
        if case .failure(let mismatch) = source.supplying(secrets), !mismatch.unexpected.isEmpty {
            throw EngineError(.usage, "run \(runID) \(mismatch.sentence)")
        }
        // A value the run never ran with would mask the wrong text and show the real one.
        if let name = source.unknownSecretValues(secrets).first {
            throw EngineError(.usage, "run \(runID) did not run with the value given for its secret variable \(name): "
                              + "give a value it ran with (--var \(name)=VALUE)")
        }
        let severalValues = source.secretsWithSeveralValues
        for (name, value) in secrets { source.overrides[name] = value }
        let unknownSecrets = source.withheldSecrets.filter { secrets[$0] == nil || severalValues.contains($0) }
        source = source.withPlaceholders()
        var notes: [String] = []
        var graph: PlanGraph?
        var names: [String: String] = [:]
        var mask = SecretMask(values: secrets.values)
        let outputs = try store.outputs(runID)
        // The values of secret outputs are masked wherever they show (a step that prints one).
        mask = mask.merging(SecretMask(values: outputs.values(named: SecretMask.isSecretName)))
        do {
            let loaded = try PlanLoader.load(source)
            mask = mask.merging(loaded.plan.secretMask(environment: environment))
            mask = mask.merging(SecretMask(values: outputs.values(named: loaded.plan.isSecret)))
            if loaded.graph.ids == report.steps.map(\.id) {
                graph = loaded.graph
                report.attachMatrices(from: loaded.plan)
                for step in loaded.plan.steps { if let name = step.name, !name.isEmpty { names[step.id] = name } }
            } else {
                notes.append("The stored plan snapshot's steps differ from the run's steps: the DAG is left out.")
            }
        } catch {
            notes.append("The stored plan snapshot does not load (\(error.message)): the DAG is left out.")
        }
        var attempts = try store.attempts(runID)
        let masking = LogMasking(mask: mask, withholding: !unknownSecrets.isEmpty)
        let logs = readLogs(report: report, attempts: attempts, stateDirectory: stateDirectory, runID: runID, limits: limits,
                            masking: masking)
        let notGiven = unknownSecrets.filter { secrets[$0] == nil }
        if !notGiven.isEmpty {
            let flags = notGiven.map { "--var \($0)=VALUE" }.joined(separator: " ")
            notes.append("The stderr tails are left out: this run's secret variables \(notGiven.joined(separator: ", ")) "
                         + "were not stored, so their values could not be masked (give them with \(flags)).")
        }
        let given = unknownSecrets.filter { secrets[$0] != nil }
        if !given.isEmpty {
            notes.append("The stderr tails are left out: this run's secret variables \(given.joined(separator: ", ")) ran "
                         + "with more than one value (a resume gave another), and one value cannot mask them all.")
        }
        if !mask.isEmpty {
            for index in report.steps.indices {
                report.steps[index].error = report.steps[index].error.map(mask.apply)
                for output in report.steps[index].outputs.indices {
                    report.steps[index].outputs[output].value = mask.apply(report.steps[index].outputs[output].value)
                }
            }
            for index in attempts.indices { attempts[index].error = attempts[index].error.map(mask.apply) }
            names = names.mapValues(mask.apply)
        }
        var page = HTMLReport(report: report, names: names, graph: graph, attempts: attempts, logs: logs, notes: notes,
                              limits: limits)
        page.logMasking = masking
        page.resumedAt = try store.events(runID).filter { $0.kind == .runResumed }.map(\.timestamp)
        return page
    }

    /// How the log tails of a page are made fit to share: the run's secret values masked, or
    /// every tail left out when some of those values are unknown.
    public struct LogMasking: Sendable {
        /// The run's secret values.
        public var mask: SecretMask
        /// Leave every tail out (the values of some secret variables were not stored).
        public var withholding: Bool

        /// No masking: a page built from data already at hand.
        public static let none = LogMasking(mask: SecretMask(values: []), withholding: false)

        /// A step's log as the page may show it.
        func apply(_ log: StepLog) -> StepLog {
            var log = log
            guard !log.omitted else { return log }
            if withholding {
                return StepLog(attempt: log.attempt, path: log.path, tail: nil, withheld: true)
            }
            guard !mask.isEmpty else { return log }
            if let text = log.tail?.text { log.tail?.text = mask.apply(text) }
            if let text = log.stdoutTail?.text { log.stdoutTail?.text = mask.apply(text) }
            log.earlierFailures = log.earlierFailures.map(apply)
            return log
        }
    }

    /// The stderr tail (and with ``Limits/includeStdout`` the stdout tail) of each started step's
    /// last attempt, failed and cancelled steps first, within the page's byte budget; then, while
    /// the budget lasts, the stderr tails of the earlier attempts that failed (newest first,
    /// failed steps first), so the error of a first session survives a resume.
    ///
    /// The live monitor calls it again for the steps that changed (`only`), so the report and
    /// the monitor show the same tails.
    package static func readLogs(report: RunReport, attempts: [RunStore.AttemptRecord], stateDirectory: StateDirectory,
                         runID: String, limits: Limits, only: Set<String>? = nil,
                         masking: LogMasking) -> [String: StepLog] {
        guard (try? stateDirectory.runDirectory(runID)) != nil else { return [:] }
        var lastAttempt: [String: Int] = [:]
        var failedAttempts: [String: [Int]] = [:]
        for attempt in attempts {
            lastAttempt[attempt.stepID] = max(lastAttempt[attempt.stepID] ?? 0, attempt.attempt)
            switch attempt.outcome {
            case .failed, .timedOut, .engineLost: failedAttempts[attempt.stepID, default: []].append(attempt.attempt)
            default: break
            }
        }
        func rank(_ status: StepStatus) -> Int {
            switch status {
            case .failed: return 0
            case .cancelled, .running: return 1
            default: return 2
            }
        }
        let order = report.steps.indices.sorted {
            (rank(report.steps[$0].status), $0) < (rank(report.steps[$1].status), $1)
        }
        var budget = limits.totalTailBytes
        var logs: [String: StepLog] = [:]
        for index in order {
            let step = report.steps[index]
            if let only, !only.contains(step.id) { continue }
            let attempt = lastAttempt[step.id] ?? step.attempts
            guard attempt > 0, !step.id.contains("/"), step.id != "..", step.id != "." else { continue }
            let stderrLog = AttemptLog(stepID: step.id, attempt: attempt, stream: .stderr)
            let relative = stderrLog.relativePath(runID: runID)
            guard budget > 0 else {
                logs[step.id] = StepLog(attempt: attempt, path: relative, tail: nil, omitted: true)
                continue
            }
            let tail = LogTail.read(path: stateDirectory.path(of: stderrLog, runID: runID),
                                    maxLines: limits.tailLines, maxBytes: min(limits.tailBytes, budget))
            budget -= tail?.text.utf8.count ?? 0
            var stdoutTail: LogTail?
            if limits.includeStdout, budget > 0 {
                stdoutTail = LogTail.read(path: stateDirectory.path(of: AttemptLog(stepID: step.id, attempt: attempt, stream: .stdout),
                                                                    runID: runID),
                                          maxLines: limits.tailLines, maxBytes: min(limits.tailBytes, budget))
                budget -= stdoutTail?.text.utf8.count ?? 0
            }
            logs[step.id] = StepLog(attempt: attempt, path: relative, tail: tail, stdoutTail: stdoutTail)
        }
        for index in order where budget > 0 {
            let step = report.steps[index]
            guard var log = logs[step.id], !log.omitted else { continue }
            let earlier = Set(failedAttempts[step.id] ?? []).filter { $0 < log.attempt }.sorted(by: >)
            for attempt in earlier where budget > 0 {
                let failed = AttemptLog(stepID: step.id, attempt: attempt, stream: .stderr)
                let tail = LogTail.read(path: stateDirectory.path(of: failed, runID: runID), maxLines: limits.tailLines,
                                        maxBytes: min(limits.tailBytes, budget))
                budget -= tail?.text.utf8.count ?? 0
                log.earlierFailures.insert(StepLog(attempt: attempt, path: failed.relativePath(runID: runID), tail: tail), at: 0)
            }
            logs[step.id] = log
        }
        return logs.mapValues(masking.apply)
    }

    // MARK: - Rendering

    /// The whole page.
    public func render() -> String {
        var page = ""
        page.reserveCapacity(4096 + report.steps.count * 900 + attempts.count * 250)
        page += """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="generator" content="omnibase-agents \(HTML.escape(Orchestration.version))">
        <title>\(HTML.escape("Run \(report.runID) · \(report.planID) · \(report.status.rawValue)"))</title>
        <style>\(Self.css)</style>
        </head>
        <body>

        """
        page += renderContent()
        page += "<footer>Generated by omnibase-agents \(HTML.escape(Orchestration.version)) at "
            + "\(HTML.escape(Timestamp.rfc3339(generatedAt))). Times are UTC; offsets are from the run's start.</footer>\n"
        page += "</body>\n</html>\n"
        return page
    }

    /// The page's content without the document around it: the header (facts, counts, notes) and
    /// the timeline, DAG and step table. The report and the live monitor's run page both show it.
    public func renderContent() -> String {
        let timeline = Timeline(self)
        var out = ""
        out.reserveCapacity(2048 + report.steps.count * 900 + attempts.count * 250)
        out += header(timeline)
        out += "<main>\n"
        out += timelineSection(timeline)
        out += dagSection()
        out += tableSection(timeline)
        out += "</main>\n"
        return out
    }

    private func header(_ timeline: Timeline) -> String {
        let counts = report.summary
        var out = "<header>\n<h1>Run <span class=\"mono\">\(HTML.escape(report.runID))</span> "
        out += "<span class=\"badge \(report.status.rawValue)\">\(report.status.rawValue)</span></h1>\n"
        out += "<dl class=\"facts\">\n"
        func fact(_ term: String, _ value: String) { out += "<div><dt>\(term)</dt><dd>\(value)</dd></div>\n" }
        fact("Plan", "<span class=\"mono\">\(HTML.escape(report.planID))</span>")
        if let stage = report.stage { fact("Stage", HTML.escape(stage)) }
        fact("Started", report.startedAt.map { HTML.escape(Timestamp.rfc3339($0)) } ?? "not started")
        if liveUntil != nil, report.duration == nil, let started = report.startedAt {
            let since = Int64((started.timeIntervalSince1970 * 1000).rounded(.down))
            fact("Duration", "<span class=\"elapsed\" data-since=\"\(since)\">\(HTML.escape(formatDuration(timeline.span)))</span>")
        } else {
            fact("Duration", HTML.escape(formatDuration(report.duration ?? (report.startedAt == nil ? nil : timeline.span))))
        }
        // A run that has not ended has no exit code yet (`exit_code` is null in its JSON).
        fact("Exit code", report.status == .pending || report.status == .running ? "-" : "\(report.exitCode)")
        var parts: [String] = []
        for status in StepStatus.allCases {
            guard let count = counts[status], count > 0 else { continue }
            parts.append("<span class=\"count \(status.rawValue)\">\(count) \(status.rawValue)</span>")
        }
        fact("Steps", "\(report.steps.count)" + (parts.isEmpty ? "" : " (" + parts.joined(separator: " · ") + ")"))
        fact("Attempts", "\(attempts.count)" + (timeline.retried > 0 ? " (\(counted(timeline.retried, "step")) retried)" : ""))
        fact("Trace", "<span class=\"mono\">\(HTML.escape(report.traceID))</span>")
        out += "</dl>\n"
        for note in notes { out += "<p class=\"note\">\(HTML.escape(note))</p>\n" }
        out += "<nav><a href=\"#timeline\">Timeline</a> <a href=\"#dag\">DAG</a> <a href=\"#steps\">Steps</a></nav>\n"
        out += "</header>\n"
        return out
    }

    /// The anchor of a step's table row.
    static func anchor(_ stepID: String) -> String { "step-" + stepID }

    package static let css = """
    :root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#fff;--panel:#f6f8fa;
    --ok:#2e7d32;--okf:#c8e6c9;--bad:#c62828;--badf:#ffcdd2;--skip:#757575;--skipf:#e0e0e0;
    --cancel:#ef6c00;--cancelf:#ffe0b2;--run:#1565c0;--runf:#bbdefb;--pend:#9e9e9e;--pendf:#fff}
    *{box-sizing:border-box}
    body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
    header,main,footer{max-width:1280px;margin:0 auto;padding:0 20px}
    header{padding-top:16px}
    h1{font-size:22px;margin:0 0 10px;display:flex;align-items:center;gap:10px;flex-wrap:wrap}
    h2{font-size:17px;margin:26px 0 4px}
    .mono,pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
    .facts{display:flex;flex-wrap:wrap;gap:6px 26px;margin:0 0 8px}
    .facts div{display:flex;gap:6px}.facts dt{color:var(--muted)}.facts dd{margin:0}
    .count{white-space:nowrap;font-weight:600}
    .count.succeeded{color:var(--ok)}.count.failed{color:var(--bad)}.count.skipped{color:var(--skip)}
    .count.cancelled{color:var(--cancel)}.count.running{color:var(--run)}.count.pending{color:var(--muted)}
    .badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;border:1px solid;white-space:nowrap}
    .badge.succeeded{color:var(--ok);background:var(--okf)}.badge.failed{color:var(--bad);background:var(--badf)}
    .badge.skipped{color:#555;background:var(--skipf);border-color:var(--skip)}
    .badge.cancelled{color:#a84300;background:var(--cancelf);border-color:var(--cancel)}
    .badge.running{color:var(--run);background:var(--runf)}.badge.pending{color:var(--muted);background:#fff}
    nav a{margin-right:14px}
    a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
    .note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px}
    .hint{color:var(--muted);margin:0 0 8px;font-size:13px}
    .legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:4px 0 8px;font-size:12px;color:var(--muted)}
    .legend span{display:inline-flex;align-items:center;gap:5px}
    .sw{display:inline-block;width:14px;height:10px;border-radius:2px}
    .sw.succeeded{background:#43a047}.sw.failed{background:#e53935}
    .sw.timed-out{background:repeating-linear-gradient(135deg,#8e24aa 0 3px,#ce93d8 3px 6px)}
    .sw.cancelled{background:#fb8c00}.sw.engine-lost{background:#bdbdbd;outline:1px dashed #424242}
    .sw.running{background:#1e88e5}.sw.wait{height:0;border-top:2px dotted #8c959f}
    .scroll{overflow:auto;border:1px solid var(--line);border-radius:6px;background:#fff}
    .gantt{max-height:75vh}
    .scroll svg{display:block}
    .axis{position:sticky;top:0;z-index:1;background:#fff}
    svg text{font-size:11px;fill:var(--fg)}
    svg .tick{fill:var(--muted)}svg .grid{stroke:#eaeef2;stroke-width:1}svg .grid.tickmark{stroke:#8c959f}
    svg .label{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
    svg .label.skipped,svg .label.cancelled,svg .label.pending{fill:var(--muted)}
    svg .label.failed{fill:var(--bad);font-weight:600}
    svg .stripe{fill:#f6f8fa}
    .attempt.succeeded{fill:#43a047}.attempt.failed{fill:#e53935}.attempt.timed-out{fill:url(#hatch)}
    .attempt.cancelled{fill:#fb8c00}.attempt.engine-lost{fill:#bdbdbd;stroke:#424242;stroke-dasharray:2 2}
    .attempt.running{fill:#1e88e5}
    a:hover .attempt{stroke:#1f2328;stroke-width:1}
    .wait{stroke:#8c959f;stroke-width:1.5;stroke-dasharray:2 3}
    .busy{fill:#bbdefb;stroke:#1565c0;stroke-width:1}
    .resume{stroke:#6a1b9a;stroke-width:1.5;stroke-dasharray:5 3}
    svg .resume-label{fill:#6a1b9a;font-weight:600}
    .node{stroke-width:1.2}
    .node.succeeded{fill:var(--okf);stroke:var(--ok)}.node.failed{fill:var(--badf);stroke:var(--bad)}
    .node.skipped{fill:var(--skipf);stroke:var(--skip)}.node.cancelled{fill:var(--cancelf);stroke:var(--cancel)}
    .node.running{fill:var(--runf);stroke:var(--run)}.node.pending{fill:var(--pendf);stroke:var(--pend)}
    a:hover .node{stroke-width:2.5}
    .edges{fill:none;stroke:#8c959f}
    .level{fill:var(--muted);font-size:11px}
    .filters{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0 8px}
    .filters label{border:1px solid var(--line);border-radius:14px;padding:2px 10px;cursor:pointer;font-size:13px;background:#fff}
    .filters label:hover{background:var(--panel)}
    input.filter{position:absolute;opacity:0;pointer-events:none}
    #f-all:checked~.filters label[for=f-all],#f-failed:checked~.filters label[for=f-failed],
    #f-retried:checked~.filters label[for=f-retried],#f-timed-out:checked~.filters label[for=f-timed-out],
    #f-skipped:checked~.filters label[for=f-skipped],#f-cancelled:checked~.filters label[for=f-cancelled],
    #f-unfinished:checked~.filters label[for=f-unfinished]{background:#1f2328;color:#fff;border-color:#1f2328}
    #f-failed:checked~.table-wrap tr.step:not(.failed),#f-retried:checked~.table-wrap tr.step:not(.retried),
    #f-timed-out:checked~.table-wrap tr.step:not(.timed-out),#f-skipped:checked~.table-wrap tr.step:not(.skipped),
    #f-cancelled:checked~.table-wrap tr.step:not(.cancelled),#f-unfinished:checked~.table-wrap tr.step:not(.unfinished){display:none}
    .table-wrap{border:1px solid var(--line);border-radius:6px}
    table{border-collapse:collapse;width:100%;font-size:13px}
    th,td{padding:5px 8px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
    th{position:sticky;top:0;background:var(--panel);z-index:1;font-weight:600;white-space:nowrap}
    td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
    td.id{max-width:260px;overflow-wrap:anywhere}
    td.id .name{color:var(--muted);font-size:12px}
    tr.step:target{background:#fff8c5}
    tr.matrix td{background:var(--panel);font-weight:600}tr.in-matrix td.id{padding-left:22px}
    td.error{max-width:320px;overflow-wrap:anywhere}
    .chip{display:inline-block;min-width:18px;padding:0 4px;margin:0 2px 2px 0;border-radius:4px;font-size:11px;text-align:center;color:#fff}
    .chip.succeeded{background:#43a047}.chip.failed{background:#e53935}
    .chip.timed-out{background:#8e24aa}
    .chip.cancelled{background:#fb8c00}.chip.engine-lost{background:#9e9e9e}.chip.running{background:#1e88e5}
    details summary{cursor:pointer;color:#0969da;white-space:nowrap}
    details.outputs dl{margin:4px 0 0;font-size:12px}details.outputs dt{font-weight:600}
    details.outputs dd{margin:0 0 4px 12px;white-space:pre-wrap;overflow-wrap:anywhere}
    pre.log{margin:4px 0 0;padding:6px 8px;background:#0d1117;color:#e6edf3;border-radius:4px;font-size:12px;
    max-width:560px;max-height:320px;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
    .muted{color:var(--muted)}
    footer{color:var(--muted);font-size:12px;padding:24px 20px}
    @media print{.gantt{max-height:none}.filters,input.filter{display:none}}
    """
}
