import Orchestration
import Stages

// The terminal rendering of a stage's report lives here, above the stages: it needs HumanReport
// and the status markers of TextStyle, which are presentation.

extension StageReport {
    /// The report for a terminal, within the style's width (at most 100 columns). A stage that
    /// ran prints `run`'s report (``HumanReport``, with the stderr tail under each failed
    /// component), then what is the stage's own: gates, hooks, the profile and the failure
    /// snapshot. Warnings are not repeated here: they go to stderr as they happen
    /// (``ExecutionContext/notices``).
    /// - Parameter failureTails: the stderr tails to show under failed components, by name
    ///   (``FailureTail/ofFailedSteps(_:stateDirectory:mask:)``).
    public func human(style: TextStyle, failureTails: [String: FailureTail] = [:]) -> String {
        let width = max(60, style.width)
        var lines: [String] = []
        switch outcome {
        case .administered(_, let text):
            // Every line of the registry's views is escaped and fitted here, in one place: names,
            // descriptions, tags, commands and paths alike (the JSON has each text whole).
            return text.map { truncate(TerminalText.escaped($0), to: width) + "\n" }.joined()
        case .dryRun(let dryRun):
            lines += dryRun.render(stage: stage, style: style)
        case .ran(let report):
            lines += HumanReport.render(report, style: style, failureTails: failureTails)
                .split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        case .nothingStarted:
            let marker = style.marker(exitCode == 0 ? .skipped : .failed)
            lines.append("\(marker) stage \(stage): nothing started, every selected component is behind an open circuit")
            for component in skipped {
                lines.append(truncate("  \(style.marker(.skipped))  \(TerminalText.escaped(component.name))  "
                                      + TerminalText.escaped(component.reason), to: width))
            }
        }
        for condition in gates {
            lines.append(truncate("gate: \(condition.met ? "met" : "NOT met"): \(TerminalText.escaped(condition.detail))", to: width))
        }
        for hook in hooks {
            // A long name is cut as a step id is, so that the status and the error stay in view.
            let detail = hook.error.map { ": \(TerminalText.escaped($0))" } ?? ""
            lines.append(truncate("hook \(hook.phase.rawValue) \(truncate(TerminalText.escaped(hook.name), to: 32)): "
                                  + "\(style.marker(hook.status)) \(formatDuration(hook.duration))\(detail)", to: width))
        }
        if let profile { lines += profile.render(style: style) }
        if let failureSnapshot { lines.append(truncate("failure snapshot: \(TerminalText.escaped(failureSnapshot))", to: width)) }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension StageDryRun {
    /// The dry run as human lines, registry text escaped, each line within the width.
    func render(stage: Stage, style: TextStyle) -> [String] {
        let width = max(60, style.width)
        func hookLine(_ phase: String, _ hook: Registry.Hook) -> String {
            truncate("\(phase) hook \(TerminalText.escaped(hook.name)): "
                     + TerminalText.escaped(ShellQuoting.line([hook.command] + hook.arguments)), to: width)
        }
        let running = steps.filter { $0.skipReason == nil }
        var lines = [truncate("Dry run of stage \(stage) (\(runMode) mode): \(counted(running.count, "component")) in order, "
                              + "nothing started", to: width)]
        lines.append(truncate("selection: \(TerminalText.escaped(criteria))", to: width))
        lines += preHooks.map { hookLine("pre", $0) }
        for (position, step) in running.enumerated() {
            var note = ""
            if case .dependency(let dependent) = step.reason { note = "  (dependency of \(TerminalText.escaped(dependent)))" }
            if step.breaker == "half_open" { note += "  (breaker trial)" }
            lines.append(truncate("\(position + 1). \(TerminalText.escaped(step.component.name)): "
                                  + TerminalText.escaped(ShellQuoting.line(step.argv)) + note, to: width))
        }
        for step in steps where step.skipReason != nil {
            lines.append(truncate("\(style.marker(.skipped)) \(TerminalText.escaped(step.component.name)): "
                                  + TerminalText.escaped(step.skipReason ?? ""), to: width))
        }
        lines += postHooks.map { hookLine("post", $0) }
        return lines
    }
}
