import Agents
import Foundation
import Orchestration

/// Prints a session's progress to stderr, one line per change (ASCII without a terminal).
struct AgentsProgressPrinter: OrchestratorObserver {
    let style: TextStyle

    func observe(_ progress: AgentProgress) async {
        let line: String
        switch progress {
        case .sessionStarted(let session, let project, let resumed):
            line = "\(resumed ? "Resuming" : "Starting") project \(project), session \(session)"
        case .taskStarted(let task, let role, let branch, _):
            line = "\(marker("run")) \(task) [\(role)] started on \(branch)"
        case .iterationStarted(let task, let iteration):
            line = "   \(task) iteration \(iteration)"
        case .iterationFinished(let task, let iteration, let verdict, let detail):
            line = "   \(task) iteration \(iteration): \(verdict == "not_yet" ? "not yet" : verdict)"
                + (verdict == "done" ? "" : ": \(detail)")
        case .taskBlocked(let task, let awaiting):
            line = "\(marker("wait")) \(task) blocked, waiting for "
                + (awaiting.isEmpty ? "any event for \(task)" : awaiting.joined(separator: ", "))
        case .taskWoken(let task, let events):
            line = "\(marker("run")) \(task) woken by \(events.joined(separator: ", "))"
        case .ciStarted(let task):
            line = "   \(task) CI running"
        case .ciFinished(let task, let passed, _, let detail):
            line = "\(marker(passed ? "pass" : "fail")) \(task) \(detail)"
        case .taskFinished(let task, let state, let reason):
            line = "\(marker(state == .done ? "pass" : "fail")) \(task) \(state.rawValue)" + (reason.map { ": \($0)" } ?? "")
        case .milestoneChanged(let milestone, let state, let detail):
            let kind = state == .blocked ? "fail" : (state == .pending ? "wait" : "pass")
            line = "\(marker(kind)) milestone \(milestone) \(state.rawValue): \(detail)"
        case .busEvent(let name, let task, let seq):
            line = "   event \(name)" + (task.map { " for \($0)" } ?? "") + " (#\(seq))"
        case .sessionFinished(let session, let status):
            line = "Session \(session) \(status.rawValue)"
        }
        // Names, reasons and details come from the plan and the agents: shown escaped. The
        // markers are plain text or emoji, so the whole line can be.
        let clipped = style.fit(TerminalText.escaped(line))
        StandardStreams.printError(clipped + "\n")
    }

    private func marker(_ kind: String) -> String {
        switch kind {
        case "pass": style.rich ? "✅" : "PASS"
        case "fail": style.rich ? "❌" : "FAIL"
        case "wait": style.rich ? "⏱️" : "WAIT"
        default: style.rich ? "▶️" : "RUN "
        }
    }
}
