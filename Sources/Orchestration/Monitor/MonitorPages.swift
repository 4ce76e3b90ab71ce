import Orchestration
import Presentation
import MonitorHTTP
import Foundation

/// The live monitor's HTML: the runs list, the run page (around ``HTMLReport/renderContent()``),
/// the agents page (from the JSON of `agents status`) and error pages.
///
/// Pages carry no inline script or style (the server's Content-Security-Policy forbids both):
/// the stylesheet and the script are fixed resources (``MonitorAssets``). Every value from the
/// store, a plan, a log or the agents' state is escaped with ``HTML/escape(_:)``. The parts that
/// change live have an id, and the event stream sends their new HTML.
enum MonitorPages {
    /// A run of the list with its progress.
    struct ListedRun {
        var row: RunStore.RunRow
        var done: Int
        var total: Int
        var counts: [StepStatus: Int]
        var live: Bool
    }

    /// The whole document.
    static func document(title: String, page: String, stream: String?, main: String, seq: Int64? = nil) -> String {
        var out = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="generator" content="omnibase-agents \(HTML.escape(Orchestration.version))">
        <title>\(HTML.escape(title))</title>
        <link rel="icon" href="data:,">
        <link rel="stylesheet" href="\(MonitorAssets.cssPath)">
        <script src="\(MonitorAssets.scriptPath)" defer></script>
        </head>

        """
        out += "<body data-page=\"\(page)\""
        if let stream { out += " data-stream=\"\(HTML.escape(stream))\"" }
        if let seq { out += " data-seq=\"\(seq)\"" }
        out += ">\n"
        out += "<div class=\"topbar\"><a class=\"brand\" href=\"/\">omnibase-agents</a><a href=\"/\">Runs</a>"
            + "<a href=\"/agents\">Agents</a><span id=\"conn\" class=\"conn\">\(stream == nil ? "" : "connecting")</span></div>\n"
        out += main
        out += "<footer>omnibase-agents \(HTML.escape(Orchestration.version)) live monitor (read-only). Times are UTC.</footer>\n"
        out += "</body>\n</html>\n"
        return out
    }

    // MARK: - Runs list

    /// The runs list page.
    static func runsPage(runs: [ListedRun], filter: RunStore.RunFilter, planIDs: [String], stream: String, note: String?) -> String {
        var main = "<header><h1>Runs</h1>\n"
        main += "<form class=\"filters-form\" method=\"get\" action=\"/\">"
        main += "<label>Status <select name=\"status\"><option value=\"\">all</option>"
        for status in RunStatus.allCases {
            main += "<option value=\"\(status.rawValue)\"\(filter.status == status ? " selected" : "")>\(status.rawValue)</option>"
        }
        main += "</select></label> <label>Plan <select name=\"plan\"><option value=\"\">all</option>"
        var plans = planIDs
        if let plan = filter.planID, !plans.contains(plan) { plans.insert(plan, at: 0) }
        for plan in plans {
            main += "<option value=\"\(HTML.escape(plan))\"\(filter.planID == plan ? " selected" : "")>\(HTML.escape(plan))</option>"
        }
        main += "</select></label> <button type=\"submit\">Filter</button>"
        if filter.status != nil || filter.planID != nil { main += " <a href=\"/\">clear</a>" }
        main += "</form>\n"
        if let note { main += "<p class=\"note\">\(HTML.escape(note))</p>\n" }
        main += "</header>\n<main>\n<div class=\"table-wrap\"><table class=\"runs\">\n<thead><tr><th>Run</th><th>Status</th>"
            + "<th>Progress</th><th>Started</th><th>Duration</th><th>Plan</th><th>Stage</th></tr></thead>\n"
        main += "<tbody id=\"runs-body\">" + runRows(runs) + "</tbody>\n</table></div>\n</main>\n"
        return document(title: "Runs · omnibase-agents", page: "runs", stream: stream, main: main)
    }

    /// The rows of the runs table (what the list's event stream sends when they change).
    static func runRows(_ runs: [ListedRun]) -> String {
        guard !runs.isEmpty else { return "<tr><td colspan=\"7\" class=\"muted\">No runs.</td></tr>\n" }
        var out = "\n"
        let now = Date()
        for run in runs {
            let row = run.row
            let id = HTML.escape(row.runID)
            out += "<tr class=\"run \(row.status.rawValue)\" id=\"run-\(id)\" data-status=\"\(row.status.rawValue)\">"
            out += "<td class=\"id\"><a class=\"mono\" href=\"/runs/\(percentEncode(row.runID))\">\(id)</a></td>"
            out += "<td><span class=\"badge \(row.status.rawValue)\">\(row.status.rawValue)</span>"
            if !row.status.isFinal && !run.live {
                out += " <span class=\"gone\">engine gone: resume \(id)</span>"
            }
            out += "</td>"
            let percent = run.total == 0 ? 0 : run.done * 100 / run.total
            out += "<td class=\"progress\"><progress max=\"\(max(1, run.total))\" value=\"\(run.done)\"></progress> "
                + "<span class=\"num\">\(run.done)/\(run.total) (\(percent)%)</span>"
            var parts: [String] = []
            for status in [StepStatus.failed, .running, .skipped, .cancelled] {
                if let count = run.counts[status], count > 0 {
                    parts.append("<span class=\"count \(status.rawValue)\">\(count) \(status.rawValue)</span>")
                }
            }
            if !parts.isEmpty { out += " " + parts.joined(separator: " · ") }
            out += "</td>"
            out += "<td class=\"num\">\(HTML.escape(row.startedAt ?? "-"))</td>"
            out += "<td class=\"num\">\(duration(row, live: run.live, now: now))</td>"
            out += "<td><a class=\"mono\" href=\"/?plan=\(percentEncode(row.planID))\">\(HTML.escape(row.planID))</a></td>"
            out += "<td>\(HTML.escape(row.stage ?? ""))</td></tr>\n"
        }
        return out
    }

    /// The run's duration; for a live run the time since it started, kept ticking by the script.
    private static func duration(_ row: RunStore.RunRow, live: Bool, now: Date) -> String {
        guard let started = row.startedAt.flatMap(Timestamp.parse) else { return "-" }
        if let finished = row.finishedAt.flatMap(Timestamp.parse), row.status.isFinal {
            return HTML.escape(formatDuration(finished.timeIntervalSince(started)))
        }
        guard live else { return "-" }
        let since = Int64((started.timeIntervalSince1970 * 1000).rounded(.down))
        return "<span class=\"elapsed\" data-since=\"\(since)\">\(HTML.escape(formatDuration(max(0, now.timeIntervalSince(started)))))</span>"
    }

    // MARK: - Run page

    /// A run's page: the report's content in `#live`, which the event stream replaces as the run
    /// goes on, and the latest events.
    static func runPage(_ run: LiveRun, stream: String) -> String {
        var main = "<div id=\"live\" class=\"report\">\n" + runContent(run) + "</div>\n"
        main += "<section class=\"events\"><h2>Latest events</h2><ol id=\"event-log\" class=\"mono\" reversed data-max=\"\(LiveRun.recentLimit)\">"
        for event in run.recentEvents.reversed() { main += eventItem(event) }
        main += "</ol></section>\n"
        let report = run.page.report
        return document(title: "Run \(report.runID) · \(report.planID) · \(report.status.rawValue)", page: "run",
                        stream: stream, main: main, seq: run.seq)
    }

    /// One line of the event log: `seq`, time, type, step, attempt (as the script writes them).
    static func eventItem(_ event: RunEvent) -> String {
        var text = Timestamp.rfc3339(event.timestamp) + " " + event.kind.rawValue
        if let step = event.stepID { text += " " + step }
        if let attempt = event.attempt { text += " #\(attempt)" }
        return "<li value=\"\(event.seq)\">\(HTML.escape(text))</li>"
    }

    /// What `#live` holds: a line about the engine, then the report's header and sections.
    static func runContent(_ run: LiveRun) -> String {
        var out = ""
        let row = run.row
        if !row.status.isFinal {
            let live = row.isLive
            let done = RunHistoryJSON.doneCount(run.page.report)
            out += "<p class=\"livebar \(live ? "on" : "gone")\" data-run-status=\"\(row.status.rawValue)\">"
            out += live ? "Live: \(done)/\(run.page.report.steps.count) steps done"
                : "engine gone: resume \(HTML.escape(row.runID)) (\(done)/\(run.page.report.steps.count) steps done)"
            out += "</p>\n"
        } else {
            out += "<p class=\"livebar done\" data-run-status=\"\(row.status.rawValue)\">Finished: \(row.status.rawValue)</p>\n"
        }
        out += run.page.renderContent()
        return out
    }

    // MARK: - Agents page

    /// The agents page: the session from the JSON of `agents status`, or a sentence saying
    /// why there is none.
    static func agentsPage(content: String, stream: String) -> String {
        document(title: "Agents · omnibase-agents", page: "agents", stream: stream,
                 main: "<div id=\"agents\">\n" + content + "</div>\n")
    }

    /// What `#agents` holds.
    static func agentsContent(_ status: Result<JSONValue?, MonitorError>) -> String {
        let json: JSONValue
        switch status {
        case .failure(let error):
            return "<header><h1>Agents</h1><p class=\"note\">\(HTML.escape(error.message))</p></header>\n"
        case .success(nil):
            return "<header><h1>Agents</h1><p class=\"hint\">No agents session in this state folder yet "
                + "(start one with 'omnibase-agents agents run PROJECT_DIR').</p></header>\n"
        case .success(let value?):
            json = value
        }
        func text(_ value: JSONValue?) -> String {
            guard let value else { return "" }
            if let string = value.stringValue { return HTML.escape(string) }
            if case .null = value { return "" }
            return HTML.escape(value.serialized())
        }
        var out = "<header><h1>Agents: \(text(json["project"]))</h1>\n<dl class=\"facts\">\n"
        func fact(_ term: String, _ value: String) { out += "<div><dt>\(term)</dt><dd>\(value)</dd></div>\n" }
        let status = json["status"]?.stringValue ?? ""
        fact("Session", "<span class=\"mono\">\(text(json["session_id"]))</span> <span class=\"badge \(agentClass(status))\">"
             + "\(HTML.escape(status))</span>" + (json["live"]?.boolValue == true ? " <span class=\"count running\">live</span>" : ""))
        fact("Integration branch", "<span class=\"mono\">\(text(json["integration_branch"]))</span>")
        fact("Repository", "<span class=\"mono\">\(text(json["repo"]))</span>")
        fact("Started", text(json["started_at"]))
        if let finished = json["finished_at"]?.stringValue { fact("Finished", HTML.escape(finished)) }
        if case .object(let members)? = json["summary"] {
            let parts = members.filter { $0.key != "total" && ($0.value.intValue ?? 0) > 0 }
                .map { "<span class=\"count \(agentClass($0.key))\">\($0.value.intValue ?? 0) \(HTML.escape($0.key))</span>" }
            fact("Tasks", "\(json["summary"]?["total"]?.intValue ?? 0)" + (parts.isEmpty ? "" : " (" + parts.joined(separator: " · ") + ")"))
        }
        out += "</dl>\n</header>\n<main>\n"

        out += "<section id=\"tasks\"><h2>Tasks</h2>\n<div class=\"table-wrap\"><table>\n<thead><tr><th>Task</th><th>Role</th>"
            + "<th>State</th><th>Iteration</th><th>Branch</th><th>Waiting for</th><th>Since</th><th>CI</th><th>Reason</th></tr></thead>\n<tbody>\n"
        for task in json["tasks"]?.arrayValue ?? [] {
            let state = task["state"]?.stringValue ?? ""
            out += "<tr class=\"task \(agentClass(state))\" id=\"task-\(text(task["id"]))\">"
            out += "<td class=\"id\"><span class=\"mono\">\(text(task["id"]))</span><div class=\"name\">\(text(task["title"]))</div></td>"
            out += "<td>\(text(task["role"]))</td>"
            out += "<td><span class=\"badge \(agentClass(state))\">\(HTML.escape(state))</span>"
            if let phase = task["phase"]?.stringValue, state == "working" { out += " <span class=\"muted\">\(HTML.escape(phase))</span>" }
            out += "</td><td class=\"num\">\(task["iteration"]?.intValue ?? 0)</td>"
            out += "<td class=\"mono\">\(text(task["branch"]))</td>"
            out += "<td>\(state == "blocked" ? waitingFor(task) : "")</td>"
            out += "<td class=\"num\">\(state == "blocked" ? blockedSince(task) : "")</td>"
            var ci = ""
            if let ciStatus = task["ci"]?["status"]?.stringValue {
                ci = "<span class=\"badge \(agentClass(ciStatus))\">\(HTML.escape(ciStatus))</span>"
                if let run = task["ci"]?["run_id"]?.stringValue {
                    ci += " <a class=\"mono\" href=\"/runs/\(percentEncode(run))\">\(HTML.escape(run))</a>"
                }
            }
            out += "<td>\(ci)</td><td class=\"error\">\(state == "done" ? "" : text(task["reason"]))</td></tr>\n"
        }
        out += "</tbody></table></div>\n</section>\n"

        out += "<section id=\"milestones\"><h2>Milestones</h2>\n<div class=\"table-wrap\"><table>\n<thead><tr><th>Milestone</th>"
            + "<th>State</th><th>Tasks</th><th>Merge</th><th>Reason</th></tr></thead>\n<tbody>\n"
        for milestone in json["milestones"]?.arrayValue ?? [] {
            let state = milestone["state"]?.stringValue ?? ""
            out += "<tr class=\"milestone \(agentClass(state))\"><td class=\"id\"><span class=\"mono\">\(text(milestone["id"]))</span>"
                + "<div class=\"name\">\(text(milestone["title"]))</div></td>"
            out += "<td><span class=\"badge \(agentClass(state))\">\(HTML.escape(state))</span></td>"
            let tasks = (milestone["tasks"]?.arrayValue ?? []).map { "<span class=\"mono\">\(text($0))</span>" }
            out += "<td>\(tasks.joined(separator: ", "))</td><td>"
            if let merge = milestone["merge"], case .object = merge {
                out += "merged into <span class=\"mono\">\(text(merge["branch"]))</span>"
                if let commit = merge["commit"]?.stringValue { out += " at <span class=\"mono\">\(HTML.escape(String(commit.prefix(12))))</span>" }
                let merged = (merge["merged_tasks"]?.arrayValue ?? []).compactMap(\.stringValue)
                if !merged.isEmpty { out += " (\(merged.map(HTML.escape).joined(separator: ", ")))" }
            } else if let request = milestone["pull_request"], case .object = request {
                out += "review branch <span class=\"mono\">\(text(request["branch"]))</span> onto "
                    + "<span class=\"mono\">\(text(request["base"]))</span>"
            }
            let conflicts = (milestone["conflicts"]?.arrayValue ?? []).compactMap(\.stringValue)
            if !conflicts.isEmpty { out += "<div class=\"error\">conflicts: \(conflicts.map(HTML.escape).joined(separator: ", "))</div>" }
            out += "</td><td class=\"error\">\(text(milestone["reason"]))</td></tr>\n"
        }
        out += "</tbody></table></div>\n</section>\n"

        let recent = json["events"]?["recent"]?.arrayValue ?? []
        out += "<section id=\"bus\"><h2>CI events (\(json["events"]?["count"]?.intValue ?? 0))</h2>\n"
        if recent.isEmpty {
            out += "<p class=\"hint\">No events yet.</p>\n"
        } else {
            out += "<ol class=\"mono events-list\">"
            for event in recent.reversed() {
                out += "<li>\(HTML.escape(event.serialized()))</li>"
            }
            out += "</ol>\n"
        }
        out += "</section>\n</main>\n"
        return out
    }

    /// What a blocked task waits for: `waiting_for` when `agents status` gives it, else the
    /// events of `awaiting` (none listed: any event for the task).
    private static func waitingFor(_ task: JSONValue) -> String {
        // Event names as the `awaiting` list shows them: monospace, each escaped.
        func names(_ events: [String]) -> String {
            events.map { "<span class=\"mono\">\(HTML.escape($0))</span>" }.joined(separator: ", ")
        }
        if let waiting = task["waiting_for"], !(waiting == .null) {
            if let text = waiting.stringValue { return names([text]) }
            if let items = waiting.arrayValue { return names(items.map { $0.stringValue ?? $0.serialized() }) }
            return HTML.escape(waiting.serialized())
        }
        let events = (task["awaiting"]?.arrayValue ?? []).compactMap(\.stringValue)
        return events.isEmpty ? "any event for \(HTML.escape(task["id"]?.stringValue ?? "the task"))" : names(events)
    }

    /// Since when a blocked task waits (`blocked_since`), ticking in the browser.
    private static func blockedSince(_ task: JSONValue) -> String {
        guard let since = task["blocked_since"]?.stringValue else { return "<span class=\"muted\">-</span>" }
        guard let date = Timestamp.parse(since) else { return HTML.escape(since) }
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        return "\(HTML.escape(since))<div class=\"muted\">for <span class=\"elapsed\" data-since=\"\(millis)\">"
            + "\(HTML.escape(formatDuration(max(0, Date().timeIntervalSince(date)))))</span></div>"
    }

    /// A task, milestone or session state as one of the report's status classes (colours).
    private static func agentClass(_ state: String) -> String {
        switch state {
        case "done", "merged", "complete", "succeeded", "passed": return "succeeded"
        case "failed", "stalled": return "failed"
        case "working", "running": return "running"
        case "blocked", "interrupted": return "cancelled"
        default: return "pending"
        }
    }

    // MARK: - Errors

    /// A small page for 404 and other refusals that a person may see.
    static func errorPage(_ status: HTTPStatus, _ message: String) -> String {
        document(title: "\(status.code) \(status.reason)", page: "error", stream: nil,
                 main: "<header><h1>\(status.code) \(HTML.escape(status.reason))</h1><p>\(HTML.escape(message))</p>"
                    + "<p><a href=\"/\">All runs</a></p></header>\n")
    }

    /// A path segment or query value percent-encoded (unreserved characters kept).
    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}

/// Why the monitor could not read something (shown on the page, never a crash).
package struct MonitorError: Error, Sendable {
    /// One sentence.
    package var message: String
    package init(_ message: String) { self.message = message }
}
