import Foundation
import Orchestration

/// The human summary of a run: a header, one line per step, a summary line; within the style's
/// width (at most 100 columns). Text from the plan or its steps is shown through
/// ``TerminalText/escaped(_:)``. Under a failed step's line come the last lines of its stderr
/// when `failureTails` has them (``FailureTail``).
public enum HumanReport {
    /// Renders a report.
    /// - Parameters:
    ///   - failureTails: the stderr tails to show under failed steps, by step id
    ///     (``FailureTail/ofFailedSteps(_:stateDirectory:mask:)``).
    ///   - showingOutputs: list each step's outputs under its line (`runs show`): one line each,
    ///     `name = value`, escaped and cut to the width, secret values as `***`.
    public static func render(_ report: RunReport, style: TextStyle, failureTails: [String: FailureTail] = [:],
                              showingOutputs: Bool = false) -> String {
        let width = max(60, style.width)
        var lines: [String] = []
        let runMarker: StepStatus
        switch report.status {
        case .succeeded: runMarker = .succeeded
        case .failed: runMarker = .failed
        case .cancelled: runMarker = .cancelled
        case .pending, .running: runMarker = .running
        }
        let stage = report.stage.map { " stage \(TerminalText.escaped($0))" } ?? ""
        // The status word is coloured after the line is fitted (colour codes take no columns).
        let header = truncate("\(style.marker(runMarker)) run \(TerminalText.escaped(report.runID)) "
                              + "(plan \(TerminalText.escaped(report.planID))\(stage)) "
                              + "\(report.status.rawValue) in \(formatDuration(report.duration))", to: width)
        var painted = header
        if let range = header.range(of: " \(report.status.rawValue) in ", options: .backwards) {
            painted.replaceSubrange(range, with: " \(style.paint(report.status.rawValue, runMarker)) in ")
        }
        lines.append(painted)
        let ids = report.steps.map { TerminalText.escaped($0.id) }
        let idWidth = min(max(4, ids.map(\.count).max() ?? 4), 32)
        let groups = matrixGroups(report.steps)
        let fixed = 2 + 4 + 2 + idWidth + 2 + 8 + 2 + 8 + 2 + (groups.isEmpty ? 0 : 2)
        var group: String?
        for (step, id) in zip(report.steps, ids) {
            // A matrix step's expansions (adjacent in plan order) under one heading, indented.
            if step.matrix?.step != group {
                group = step.matrix?.step
                if let group, let members = groups[group] {
                    lines.append(truncate("  matrix \(TerminalText.escaped(group)): \(counted(members.count, "step")), "
                                          + tally(members), to: width))
                }
            }
            let indent = group == nil ? "" : "  "
            let marker = pad(style.marker(step), 4)
            let attempts = counted(step.attempts, "try", "tries")
            var detail = TerminalText.escaped(step.error ?? "")
            if detail.isEmpty, step.status == .succeeded { detail = "" }
            if detail.isEmpty, let jobID = step.jobID { detail = "Slurm job \(TerminalText.escaped(jobID))" }
            if let condition = step.condition {
                let shown = "if \(TerminalText.escaped(condition))"
                detail = detail.isEmpty ? shown : "\(detail) (\(shown))"
            }
            // Ungrouped ids get the indent's two columns, so that what follows stays aligned.
            let column = idWidth + (groups.isEmpty || group != nil ? 0 : 2)
            let line = "  \(indent)\(marker)  \(pad(truncate(id, to: column), column))  \(pad(attempts, 8))  "
                + "\(pad(formatDuration(step.duration), 8))  \(style.paint(truncate(detail, to: max(0, width - fixed)), step.status))"
            lines.append(trimTrailing(line))
            if step.status == .failed, let tail = failureTails[step.id] { lines += tail.rendered(width: width) }
            if showingOutputs {
                for output in step.outputs {
                    lines.append(truncate("        \(TerminalText.escaped(output.name)) = \(TerminalText.escaped(output.shownValue))",
                                          to: width))
                }
            }
        }
        let counts = report.summary
        let tally = [StepStatus.succeeded, .failed, .skipped, .cancelled].map { status in
            let text = "\(counts[status] ?? 0) \(status.rawValue)"
            return (counts[status] ?? 0) > 0 ? style.paint(text, status) : text
        }
        lines.append("\(counted(report.steps.count, "step")): " + tally.joined(separator: ", "))
        return lines.joined(separator: "\n") + "\n"
    }

    /// The steps of each matrix step, by its id.
    private static func matrixGroups(_ steps: [RunReport.StepReport]) -> [String: [RunReport.StepReport]] {
        var groups: [String: [RunReport.StepReport]] = [:]
        for step in steps { if let group = step.matrix?.step { groups[group, default: []].append(step) } }
        return groups
    }

    /// `3 succeeded, 1 failed`: the statuses the steps have, in a fixed order.
    private static func tally(_ steps: [RunReport.StepReport]) -> String {
        var counts: [StepStatus: Int] = [:]
        for step in steps { counts[step.status, default: 0] += 1 }
        return [StepStatus.succeeded, .failed, .skipped, .cancelled, .running, .pending].compactMap { status in counts[status].map { "\($0) \(status.rawValue)" } }
            .joined(separator: ", ")
    }

    private static func trimTrailing(_ line: String) -> String {
        var line = line
        while line.hasSuffix(" ") { line.removeLast() }
        return line
    }
}
