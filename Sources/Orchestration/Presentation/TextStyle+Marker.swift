import OmnibaseSupport
import Orchestration

extension TextStyle {
    /// The marker of a step or run status: ✅ PASS, ❌ FAIL, ⏭️ SKIP, ⚠️ WARN (cancelled),
    /// ▶️ RUN (running), ⏳ WAIT (pending). A step that timed out shows ``timedOutMarker``.
    public func marker(_ status: StepStatus) -> String {
        switch status {
        case .succeeded: return rich ? "✅" : "PASS"
        case .failed: return rich ? "❌" : "FAIL"
        case .skipped: return rich ? "⏭️" : "SKIP"
        case .cancelled: return rich ? "⚠️" : "WARN"
        case .running: return rich ? "▶️" : "RUN"
        case .pending: return rich ? "⏳" : "WAIT"
        }
    }

    /// The marker of a step whose last attempt timed out: ⏱️ TIME.
    public var timedOutMarker: String { rich ? "⏱️" : "TIME" }

    /// The marker of a step in a report: ``timedOutMarker`` when it failed by timing out.
    public func marker(_ step: RunReport.StepReport) -> String {
        step.status == .failed && step.timedOut ? timedOutMarker : marker(step.status)
    }

    /// Text in the colour of a status when rich (green succeeded, red failed, yellow skipped or
    /// cancelled, cyan running or pending); the text itself otherwise.
    public func paint(_ text: String, _ status: StepStatus) -> String {
        guard !text.isEmpty else { return text }
        switch status {
        case .succeeded: return color(text, "32")
        case .failed: return color(text, "31")
        case .skipped, .cancelled: return color(text, "33")
        case .pending, .running: return color(text, "36")
        }
    }
}
