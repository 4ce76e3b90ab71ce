import Foundation
import Orchestration

extension HTMLReport {
    /// The run's time frame and each step's attempts, shared by the Gantt chart and the table.
    struct Timeline {
        /// Time zero: the run's start (or its first attempt's).
        let origin: Date?
        /// Seconds from ``origin`` to the last recorded moment (at least 1 ms).
        let span: Double
        /// Each step's attempts, by step index, in attempt order.
        let attemptsByStep: [[RunStore.AttemptRecord]]
        /// How many steps had more than one attempt.
        let retried: Int
        /// Step indices in the order the Gantt chart shows them: by their first attempt's start,
        /// then the steps that never started, in plan order.
        let rowOrder: [Int]
        /// How many attempts ran at once over time: (offset, count) at each change, from 0.
        let concurrency: [(at: Double, count: Int)]
        /// The most attempts that ran at once.
        let maxConcurrency: Int

        init(_ page: HTMLReport) {
            var indexByID: [String: Int] = [:]
            for (index, step) in page.report.steps.enumerated() { indexByID[step.id] = index }
            var byStep = [[RunStore.AttemptRecord]](repeating: [], count: page.report.steps.count)
            var first = page.report.startedAt
            var last = page.report.finishedAt
            for attempt in page.attempts {
                guard let index = indexByID[attempt.stepID] else { continue }
                byStep[index].append(attempt)
                for date in [attempt.startedAt, attempt.finishedAt].compactMap({ $0 }) {
                    first = min(first ?? date, date)
                    last = max(last ?? date, date)
                }
            }
            for step in page.report.steps {
                if let date = step.finishedAt { last = max(last ?? date, date) }
            }
            if let until = page.liveUntil, first != nil { last = max(last ?? until, until) }
            origin = first
            if let first, let last { span = max(0.001, last.timeIntervalSince(first)) } else { span = 0.001 }
            attemptsByStep = byStep.map { $0.sorted { $0.attempt < $1.attempt } }
            retried = byStep.filter { $0.count > 1 }.count
            let origin = first
            let frameEnd = span
            func seconds(_ date: Date?) -> Double? { guard let origin, let date else { return nil }; return date.timeIntervalSince(origin) }
            let firstStart: [Double?] = byStep.map { attempts in attempts.compactMap { seconds($0.startedAt) }.min() }
            rowOrder = firstStart.indices.sorted { left, right in
                switch (firstStart[left], firstStart[right]) {
                case let (l?, r?): return (l, left) < (r, right)
                case (.some, nil): return true
                case (nil, .some): return false
                case (nil, nil): return left < right
                }
            }
            // A sweep over the attempts' starts (+1) and ends (-1); an end sorts before a start at
            // the same moment, so back-to-back attempts do not count as overlapping.
            var changes: [(at: Double, delta: Int)] = []
            for attempts in byStep {
                for attempt in attempts {
                    guard let start = seconds(attempt.startedAt) else { continue }
                    let end = max(start, seconds(attempt.finishedAt) ?? frameEnd)
                    changes.append((start, 1))
                    changes.append((end, -1))
                }
            }
            changes.sort { ($0.at, $0.delta) < ($1.at, $1.delta) }
            var steps: [(at: Double, count: Int)] = [(0, 0)]
            var running = 0
            var most = 0
            for change in changes {
                running += change.delta
                most = max(most, running)
                if let last = steps.last, last.at == change.at { steps[steps.count - 1].count = running } else { steps.append((change.at, running)) }
            }
            concurrency = steps
            maxConcurrency = most
        }

        /// Seconds since ``origin``.
        func offset(_ date: Date?) -> Double? {
            guard let origin, let date else { return nil }
            return date.timeIntervalSince(origin)
        }

        /// An attempt's start and end offsets; an attempt with no recorded end runs to the end of
        /// the frame.
        func interval(_ attempt: RunStore.AttemptRecord) -> (start: Double, end: Double) {
            let start = offset(attempt.startedAt) ?? 0
            let end = offset(attempt.finishedAt) ?? span
            return (start, max(start, end))
        }
    }

    /// Row height and label use of the Gantt chart for a number of steps: 22 px rows with labels
    /// up to 90 steps, shrinking to 2 px rows (hover titles only) for thousands.
    static func ganttRowHeight(steps: Int) -> Int {
        max(2, min(22, 2000 / max(1, steps)))
    }

    func timelineSection(_ timeline: Timeline) -> String {
        let steps = report.steps
        var out = "<section id=\"timeline\">\n<h2>Timeline</h2>\n"
        guard timeline.origin != nil, !attempts.isEmpty else {
            return out + "<p class=\"hint\">No attempt started in this run.</p>\n</section>\n"
        }
        let rowHeight = Self.ganttRowHeight(steps: steps.count)
        let labels = rowHeight >= 10
        let longest = steps.map { $0.id.count }.max() ?? 4
        let labelChars = min(32, max(6, longest))
        let gutter = labels ? Double(labelChars) * 6.7 + 18 : 56
        let chartWidth = 960.0
        let width = gutter + chartWidth + 16
        let pad = rowHeight >= 10 ? 3.0 : (rowHeight >= 4 ? 1.0 : 0.0)
        let height = Double(steps.count * rowHeight) + 6
        func x(_ seconds: Double) -> Double { gutter + seconds / timeline.span * chartWidth }

        out += "<p class=\"hint\">One bar per attempt; rows are the steps in the order they first started "
            + "(steps that never started last, in plan order); the lane above the rows counts the steps running at once"
            + (resumedAt.isEmpty ? "" : "; a dashed line marks each resume")
        out += labels ? "" : " (\(steps.count) rows, \(rowHeight) px each: hover a bar for its step)"
        out += ". Dotted lines are the waits before retries. Click a bar for the step's row in the table.</p>\n"
        out += "<div class=\"legend\">"
        for (name, text) in [("succeeded", "succeeded"), ("failed", "failed"), ("timed-out", "timed out"),
                             ("cancelled", "cancelled"), ("engine-lost", "engine lost"), ("running", "unfinished"),
                             ("wait", "retry wait")] {
            out += "<span><i class=\"sw \(name)\"></i>\(text)</span>"
        }
        out += "</div>\n<div class=\"scroll gantt\">\n"

        // The time axis stays on top while the rows scroll.
        let ticks = Self.ticks(span: timeline.span)
        out += "<svg class=\"axis\" width=\"\(HTML.number(width))\" height=\"26\" viewBox=\"0 0 \(HTML.number(width)) 26\" "
            + "role=\"img\" aria-label=\"time axis\">"
        out += "<line x1=\"\(HTML.number(gutter))\" y1=\"25.5\" x2=\"\(HTML.number(gutter + chartWidth))\" y2=\"25.5\" "
            + "class=\"grid tickmark\"/>"
        for tick in ticks {
            let at = HTML.number(x(tick))
            out += "<line class=\"grid tickmark\" x1=\"\(at)\" y1=\"19\" x2=\"\(at)\" y2=\"26\"/>"
            out += "<text class=\"tick\" x=\"\(at)\" y=\"14\" text-anchor=\"middle\">\(Self.axisLabel(tick, step: ticks.count > 1 ? ticks[1] : tick))</text>"
        }
        if !labels {
            out += "<text class=\"tick\" x=\"4\" y=\"14\">step #</text>"
        }
        out += "</svg>\n"
        out += concurrencyLane(timeline, gutter: gutter, chartWidth: chartWidth, width: width)

        out += "<svg class=\"rows\" width=\"\(HTML.number(width))\" height=\"\(HTML.number(height))\" "
            + "viewBox=\"0 0 \(HTML.number(width)) \(HTML.number(height))\" role=\"img\" aria-label=\"Gantt chart of every attempt\">\n"
        out += "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
            + "<rect width=\"6\" height=\"6\" fill=\"#ce93d8\"/><rect width=\"3\" height=\"6\" fill=\"#8e24aa\"/></pattern></defs>\n"
        if labels {
            for index in stride(from: 1, to: steps.count, by: 2) {
                out += "<rect class=\"stripe\" x=\"0\" y=\"\(index * rowHeight)\" width=\"\(HTML.number(width))\" height=\"\(rowHeight)\"/>"
            }
            out += "\n"
        }
        for tick in ticks {
            let at = HTML.number(x(tick))
            out += "<line class=\"grid\" x1=\"\(at)\" y1=\"0\" x2=\"\(at)\" y2=\"\(HTML.number(height))\"/>"
        }
        out += "\n"
        if !labels {
            // Row numbers every so many rows, so a region of the chart can be found in the table.
            let every = Self.rowNumberStride(rowHeight: rowHeight)
            for number in [1] + Array(stride(from: every, through: steps.count, by: every)) {
                out += "<text class=\"tick\" x=\"4\" y=\"\((number - 1) * rowHeight + 9)\">\(number)</text>"
            }
            out += "\n"
        }
        for (row, index) in timeline.rowOrder.enumerated() {
            let step = steps[index]
            let top = Double(row * rowHeight)
            let href = "#" + HTML.escape(Self.anchor(step.id))
            if labels {
                out += "<a href=\"\(href)\"><text class=\"label \(step.status.rawValue)\" x=\"6\" "
                    + "y=\"\(HTML.number(top + Double(rowHeight) / 2 + 4))\">\(HTML.escape(HTML.truncate(step.id, to: labelChars)))"
                    + "<title>\(HTML.escape(step.id)): \(step.status.rawValue)</title></text></a>"
            }
            let stepAttempts = timeline.attemptsByStep[index]
            guard !stepAttempts.isEmpty else {
                if labels {
                    // Say why the row is empty.
                    out += "<text class=\"tick\" x=\"\(HTML.number(gutter + 6))\" y=\"\(HTML.number(top + Double(rowHeight) / 2 + 4))\">"
                        + HTML.escape(HTML.truncate(step.status == .pending ? "not started"
                                                    : step.status.rawValue + (step.error.map { ": " + $0 } ?? ""), to: 140))
                        + "</text>\n"
                }
                continue
            }
            out += "<a href=\"\(href)\">"
            var previousEnd: Double?
            for attempt in stepAttempts {
                let (start, end) = timeline.interval(attempt)
                if let previousEnd, rowHeight >= 6, start > previousEnd {
                    let y = HTML.number(top + Double(rowHeight) / 2)
                    out += "<line class=\"wait\" x1=\"\(HTML.number(x(previousEnd)))\" y1=\"\(y)\" x2=\"\(HTML.number(x(start)))\" y2=\"\(y)\"/>"
                }
                previousEnd = end
                let barWidth = max(2, (end - start) / timeline.span * chartWidth)
                out += "<rect class=\"attempt \(attempt.outcome.rawValue)\" x=\"\(HTML.number(x(start)))\" "
                    + "y=\"\(HTML.number(top + pad))\" width=\"\(HTML.number(barWidth))\" "
                    + "height=\"\(HTML.number(Double(rowHeight) - 2 * pad))\"><title>"
                    + HTML.escape(Self.describe(attempt, start: start, end: end)) + "</title></rect>"
            }
            out += "</a>\n"
        }
        for (at, _) in resumeOffsets(timeline) {
            out += "<line class=\"resume\" x1=\"\(HTML.number(x(at)))\" y1=\"0\" x2=\"\(HTML.number(x(at)))\" "
                + "y2=\"\(HTML.number(height))\"/>"
        }
        out += "</svg>\n</div>\n</section>\n"
        return out
    }

    /// The resumes within the frame: their offsets and times.
    func resumeOffsets(_ timeline: Timeline) -> [(Double, Date)] {
        resumedAt.compactMap { date in timeline.offset(date).map { (min(max(0, $0), timeline.span), date) } }
    }

    /// The lane above the Gantt rows: how many steps ran at once over time, as a step chart, and
    /// a labelled line at each resume.
    func concurrencyLane(_ timeline: Timeline, gutter: Double, chartWidth: Double, width: Double) -> String {
        let laneHeight = 44.0
        let top = 4.0
        let bottom = laneHeight - 4
        let most = max(1, timeline.maxConcurrency)
        func x(_ seconds: Double) -> Double { gutter + seconds / timeline.span * chartWidth }
        func y(_ count: Int) -> Double { bottom - Double(count) / Double(most) * (bottom - top - 10) }
        var out = "<svg class=\"lane\" width=\"\(HTML.number(width))\" height=\"\(HTML.number(laneHeight))\" "
            + "viewBox=\"0 0 \(HTML.number(width)) \(HTML.number(laneHeight))\" role=\"img\" "
            + "aria-label=\"steps running at once, at most \(timeline.maxConcurrency)\" data-max=\"\(timeline.maxConcurrency)\">"
        out += "<text class=\"tick\" x=\"4\" y=\"18\">at once</text>"
        out += "<text class=\"tick\" x=\"4\" y=\"32\">max \(timeline.maxConcurrency)</text>"
        var d = "M\(HTML.number(x(0))),\(HTML.number(y(0)))"
        var previous = 0
        for change in timeline.concurrency {
            let at = HTML.number(x(change.at))
            d += "L\(at),\(HTML.number(y(previous)))L\(at),\(HTML.number(y(change.count)))"
            previous = change.count
        }
        d += "L\(HTML.number(x(timeline.span))),\(HTML.number(y(previous)))L\(HTML.number(x(timeline.span))),\(HTML.number(y(0)))z"
        out += "<path class=\"busy\" d=\"\(d)\"><title>steps running at once (at most \(timeline.maxConcurrency))</title></path>"
        out += "<line class=\"grid tickmark\" x1=\"\(HTML.number(gutter))\" y1=\"\(HTML.number(bottom))\" "
            + "x2=\"\(HTML.number(gutter + chartWidth))\" y2=\"\(HTML.number(bottom))\"/>"
        for (at, date) in resumeOffsets(timeline) {
            let position = HTML.number(x(at))
            out += "<line class=\"resume\" x1=\"\(position)\" y1=\"0\" x2=\"\(position)\" y2=\"\(HTML.number(laneHeight))\"/>"
            out += "<text class=\"resume-label\" x=\"\(HTML.number(x(at) + 3))\" y=\"11\">resumed"
                + "<title>resumed at \(HTML.escape(Timestamp.rfc3339(date)))</title></text>"
        }
        out += "</svg>\n"
        return out
    }

    /// `build #2: failed, exit 1 (1.20s, at +0.50s)` and the error, for a bar's hover title.
    static func describe(_ attempt: RunStore.AttemptRecord, start: Double, end: Double) -> String {
        var text = "\(attempt.stepID) #\(attempt.attempt): \(attempt.outcome.rawValue.replacingOccurrences(of: "-", with: " "))"
        if let code = attempt.exitCode { text += ", exit \(code)" }
        if let signal = attempt.signal { text += ", \(SignalName.describe(signal))" }
        if let jobID = attempt.jobID { text += ", Slurm job \(jobID)" }
        text += attempt.finishedAt == nil ? " (no end recorded, at +\(formatDuration(start)))"
            : " (\(formatDuration(end - start)), at +\(formatDuration(start)))"
        if let error = attempt.error, !error.isEmpty { text += "\n" + error }
        return text
    }

    /// About eight round tick positions (1, 2 or 5 times a power of ten seconds, or whole minutes)
    /// from 0 to `span`.
    static func ticks(span: Double) -> [Double] {
        let raw = span / 8
        var step: Double
        if raw >= 60 {
            let minutes = [1.0, 2, 5, 10, 15, 30, 60, 120, 240, 480, 1440]
            step = (minutes.first { $0 * 60 >= raw } ?? 1440) * 60
        } else {
            let magnitude = pow(10, floor(log10(max(raw, 0.000_1))))
            step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        }
        step = max(step, 0.001)
        var ticks: [Double] = []
        var tick = 0.0
        while tick <= span + step * 1e-9 && ticks.count < 200 {
            ticks.append(tick)
            tick += step
        }
        return ticks
    }

    /// `0`, `0.25s`, `15s`, `2m`, `1m30s`, `1h05m`: as many decimals as the tick step needs.
    static func axisLabel(_ seconds: Double, step: Double) -> String {
        if seconds == 0 { return "0" }
        if step < 1 {
            let decimals = step < 0.01 ? 3 : (step < 0.1 ? 2 : 1)
            return String(format: "%.\(decimals)fs", seconds)
        }
        let whole = Int(seconds.rounded())
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return whole % 60 == 0 ? "\(whole / 60)m" : String(format: "%dm%02ds", whole / 60, whole % 60) }
        return String(format: "%dh%02dm", whole / 3600, (whole % 3600) / 60)
    }

    /// Row numbers at least 40 px apart, at a round stride (10, 25, 50, 100, ...).
    static func rowNumberStride(rowHeight: Int) -> Int {
        for candidate in [5, 10, 25, 50, 100, 250, 500, 1000] where candidate * rowHeight >= 40 { return candidate }
        return 1000
    }
}
