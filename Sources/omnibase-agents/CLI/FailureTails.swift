import Foundation
import Orchestration
import Presentation

extension CommonOptions {
    /// The human report of a run with the stderr tail of each failed step under its line
    /// (``FailureTail``), masked with every secret value this invocation knows (``PrintMask``).
    /// - Parameter showingOutputs: list the steps' outputs (`runs show`).
    func humanReport(_ report: RunReport, showingOutputs: Bool = false) -> String {
        var tails: [String: FailureTail] = [:]
        if report.status == .failed, let directory = try? StateDirectory(path: stateDirectory) {
            tails = FailureTail.ofFailedSteps(report, stateDirectory: directory, mask: PrintMask.shared.current)
        }
        return HumanReport.render(report, style: style, failureTails: tails, showingOutputs: showingOutputs)
    }
}
