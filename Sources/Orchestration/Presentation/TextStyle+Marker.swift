import OmnibaseSupport
import Orchestration

extension TextStyle {
    /// The marker of a step or run status.
    public func marker(_ status: StepStatus) -> String {
        switch status {
        case .succeeded: return rich ? "✅" : "PASS"
        case .failed: return rich ? "❌" : "FAIL"
        case .skipped: return rich ? "⏭️" : "SKIP"
        case .cancelled: return rich ? "⚠️" : "WARN"
        case .pending, .running: return rich ? "⏱️" : "TIME"
        }
    }
}
