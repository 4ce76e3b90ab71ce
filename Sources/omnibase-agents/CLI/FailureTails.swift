import Foundation
import Orchestration
import Presentation

extension CommonOptions {
    /// The human report of a run with the stderr tail of each failed step under its line
    /// (``FailureTail``), masked with every secret value this invocation knows (``PrintMask``).
    /// - Parameter showingOutputs: list the steps' outputs (`runs show`).
    func humanReport(_ report: RunReport, showingOutputs: Bool = false) -> String {
        HumanReport.render(report, style: style, failureTails: failureTails(of: report), showingOutputs: showingOutputs)
    }

    /// The stderr tail of each failed step of a failed run, masked with every secret value this
    /// invocation knows (``PrintMask``).
    func failureTails(of report: RunReport) -> [String: FailureTail] {
        guard report.status == .failed, let directory = try? StateDirectory(path: stateDirectory) else { return [:] }
        return FailureTail.ofFailedSteps(report, stateDirectory: directory, mask: PrintMask.shared.current)
    }
}
