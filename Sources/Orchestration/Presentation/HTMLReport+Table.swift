import Foundation
import Orchestration

extension HTMLReport {
    /// The step table, with status filters that need no script (radio buttons and CSS).
    func tableSection(_ timeline: Timeline) -> String {
        let steps = report.steps
        var classes: [[String]] = []
        classes.reserveCapacity(steps.count)
        for (index, step) in steps.enumerated() {
            var names = [step.status.rawValue]
            if timeline.attemptsByStep[index].count > 1 { names.append("retried") }
            if timeline.attemptsByStep[index].contains(where: { $0.timedOut }) { names.append("timed-out") }
            if !step.status.isFinal { names.append("unfinished") }
            classes.append(names)
        }
        func count(_ name: String) -> Int { classes.filter { $0.contains(name) }.count }
        var out = "<section id=\"steps\">\n<h2>Steps</h2>\n"
        let filters: [(id: String, label: String, count: Int)] = [
            ("all", "All", steps.count), ("failed", "Failed", count("failed")), ("retried", "Retried", count("retried")),
            ("timed-out", "Timed out", count("timed-out")), ("skipped", "Skipped", count("skipped")),
            ("cancelled", "Cancelled", count("cancelled")), ("unfinished", "Unfinished", count("unfinished")),
        ].filter { $0.id == "all" || $0.count > 0 }
        for filter in filters {
            out += "<input class=\"filter\" type=\"radio\" name=\"filter\" id=\"f-\(filter.id)\""
                + (filter.id == "all" ? " checked" : "") + ">"
        }
        out += "\n<div class=\"filters\">"
        for filter in filters {
            out += "<label for=\"f-\(filter.id)\">\(filter.label) (\(filter.count))</label>"
        }
        out += "</div>\n<div class=\"table-wrap\">\n<table>\n<thead><tr><th>#</th><th>Step</th><th>Status</th><th>Attempts</th>"
            + "<th>Start</th><th>Duration</th><th>Exit</th><th>Error</th>"
            + (limits.includeStdout ? "<th>output (last attempt)</th>" : "<th>stderr</th>") + "</tr></thead>\n<tbody>\n"
        let failedCount = count("failed")
        var groupSizes: [String: [StepStatus: Int]] = [:]
        for step in steps { if let group = step.matrix?.step { groupSizes[group, default: [:]][step.status, default: 0] += 1 } }
        var group: String?
        for (index, step) in steps.enumerated() {
            // A matrix step's expansions (adjacent in plan order) under a heading row with its id.
            if step.matrix?.step != group {
                group = step.matrix?.step
                if let group, let counts = groupSizes[group] {
                    let tally = [StepStatus.succeeded, .failed, .skipped, .cancelled, .running, .pending]
                        .compactMap { status in counts[status].map { "\($0) \(status.rawValue)" } }.joined(separator: ", ")
                    out += "<tr class=\"matrix\"><td></td><td colspan=\"8\">matrix <span class=\"mono\">\(HTML.escape(group))</span>"
                        + " · \(counts.values.reduce(0, +)) expansions: \(tally)</td></tr>\n"
                }
            }
            if group != nil { classes[index].append("in-matrix") }
            out += "<tr class=\"step \(classes[index].joined(separator: " "))\" id=\"\(HTML.escape(Self.anchor(step.id)))\">"
            out += "<td class=\"num\">\(index + 1)</td>"
            out += "<td class=\"id\"><span class=\"mono\">\(HTML.escape(step.id))</span>"
            if let name = names[step.id] { out += "<div class=\"name\">\(HTML.escape(name))</div>" }
            out += outputsBlock(step)
            if let condition = step.condition { out += "<div class=\"name mono\">if \(HTML.escape(condition))</div>" }
            out += "</td><td><span class=\"badge \(step.status.rawValue)\">\(step.status.rawValue)</span></td><td>"
            let stepAttempts = timeline.attemptsByStep[index]
            if stepAttempts.isEmpty {
                out += "<span class=\"muted\">0</span>"
            } else {
                for attempt in stepAttempts {
                    let (start, end) = timeline.interval(attempt)
                    out += "<span class=\"chip \(attempt.outcome.rawValue)\" title=\""
                        + HTML.escape(Self.describe(attempt, start: start, end: end)) + "\">\(attempt.attempt)</span>"
                }
                if let jobID = step.jobID { out += "<div class=\"name mono\">Slurm job \(HTML.escape(jobID))</div>" }
            }
            out += "</td>"
            let start = timeline.offset(step.startedAt).map { "+" + formatDuration($0) } ?? "-"
            out += "<td class=\"num\">\(start)</td><td class=\"num\">\(durationText(step))</td>"
            out += "<td class=\"num\">\(exitText(step))</td>"
            out += "<td class=\"error\">\(step.error.map(HTML.escape) ?? "")</td>"
            out += "<td>\(logCell(step, open: step.status == .failed && failedCount <= 10))</td></tr>\n"
        }
        out += "</tbody>\n</table>\n</div>\n</section>\n"
        return out
    }

    /// The most outputs listed per step, and the most characters shown of each value.
    static let shownOutputs = 50, shownOutputCharacters = 300

    /// A step's outputs (`name = value`, secret values as `***`), folded, within
    /// ``shownOutputs`` and ``shownOutputCharacters``.
    private func outputsBlock(_ step: RunReport.StepReport) -> String {
        guard !step.outputs.isEmpty else { return "" }
        let count = step.outputs.count
        var out = "<details class=\"outputs\"><summary>\(count == 1 ? "1 output" : "\(count) outputs")</summary><dl class=\"mono\">"
        for output in step.outputs.prefix(Self.shownOutputs) {
            let value = output.shownValue
            let shown = value.count > Self.shownOutputCharacters
                ? String(value.prefix(Self.shownOutputCharacters)) + "… (\(value.utf8.count) bytes)" : value
            out += "<dt>\(HTML.escape(output.name))</dt><dd>\(HTML.escape(shown))</dd>"
        }
        if count > Self.shownOutputs { out += "<dd class=\"muted\">… \(count - Self.shownOutputs) more</dd>" }
        return out + "</dl></details>"
    }

    /// The step's duration; for a running step the time since it started, in an element whose
    /// `data-since` (milliseconds since 1970) lets the live monitor's script keep it ticking.
    private func durationText(_ step: RunReport.StepReport) -> String {
        guard step.status == .running, step.finishedAt == nil, let started = step.startedAt else {
            return formatDuration(step.duration)
        }
        let since = Int64((started.timeIntervalSince1970 * 1000).rounded(.down))
        return "<span class=\"elapsed\" data-since=\"\(since)\">\(formatDuration(max(0, generatedAt.timeIntervalSince(started))))</span>"
    }

    /// `0`, `1`, `SIGKILL`, `timed out (SIGTERM)`, or `-`.
    private func exitText(_ step: RunReport.StepReport) -> String {
        var parts: [String] = []
        if step.timedOut { parts.append("timed out") }
        if let code = step.exitCode { parts.append(step.timedOut ? "exit \(code)" : "\(code)") }
        if let signal = step.signal { parts.append(SignalName.describe(signal)) }
        return parts.isEmpty ? "-" : parts.joined(separator: ", ")
    }

    private func logCell(_ step: RunReport.StepReport, open: Bool) -> String {
        guard let log = logs[step.id] else { return "" }
        let path = HTML.escape(log.path)
        if log.omitted {
            return "<span class=\"muted\" title=\"\(path)\">left out (page size limit)</span>"
        }
        if log.withheld {
            return "<span class=\"muted\" title=\"\(path)\">left out (secrets that cannot be masked)</span>"
        }
        guard limits.includeStdout else {
            var cell = ""
            for earlier in log.earlierFailures {
                let earlierPath = HTML.escape(earlier.path)
                if let tail = earlier.tail {
                    cell += tailBlock(tail, label: "failed ", attempt: earlier.attempt, path: earlierPath, open: false,
                                      always: true)
                } else {
                    cell += "<div class=\"muted\" title=\"\(earlierPath)\">failed attempt \(earlier.attempt): empty</div>"
                }
            }
            guard let tail = log.tail else { return cell + "<span class=\"muted\">empty</span>" }
            return cell + tailBlock(tail, label: log.earlierFailures.isEmpty ? "" : "last ", attempt: log.attempt, path: path,
                                    open: open, always: !log.earlierFailures.isEmpty)
        }
        // stdout and stderr, each in its own block (the live monitor).
        let outPath = HTML.escape(AttemptLog(stepID: step.id, attempt: log.attempt, stream: .stdout).relativePath(runID: report.runID))
        var cell = ""
        if let tail = log.stdoutTail { cell += tailBlock(tail, label: "stdout: ", attempt: log.attempt, path: outPath, open: false) }
        if let tail = log.tail { cell += tailBlock(tail, label: "stderr: ", attempt: log.attempt, path: path, open: open) }
        return cell.isEmpty ? "<span class=\"muted\">empty</span>" : cell
    }

    /// - Parameter always: name the attempt even when it is the first.
    private func tailBlock(_ tail: LogTail, label: String, attempt: Int, path: String, open: Bool,
                           always: Bool = false) -> String {
        var summary = tail.lineCount == 1 ? "1 line" : "\(tail.lineCount) lines"
        if tail.truncated { summary = "last " + summary }
        if always { summary = "attempt \(attempt) · " + summary } else if attempt > 1 { summary += " · attempt \(attempt)" }
        return "<details\(open ? " open" : "")><summary>\(label)\(summary)</summary>"
            + "<pre class=\"log\" title=\"\(path)\">\(HTML.escape(tail.text))</pre></details>"
    }
}
