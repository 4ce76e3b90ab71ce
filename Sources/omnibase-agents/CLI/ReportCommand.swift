import Foundation
import Orchestration
import Presentation

/// `report RUN_ID --html FILE`: a self-contained HTML page of a run.
struct ReportCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "report", arguments: "RUN_ID --html FILE",
        abstract: "Write a run's self-contained HTML page: timeline (Gantt), DAG, step table.",
        discussion: """
        Writes one HTML file that needs nothing else (inline CSS and SVG, no script, no network): a Gantt \
        timeline with one bar per attempt (retries, timeouts and cancellations visible), the DAG laid out by \
        levels, and a table of the steps with status, attempts, durations, exit codes, errors and the last \
        lines of each step's stderr. FILE '-' writes to stdout.
        """,
        sections: [
            OptionSection("Options:", [
                .single("--html", "FILE", "Where to write the page (replaced atomically)."),
                .repeatable("--var", "NAME=VALUE", """
                    The value of a secret variable of the run, which was not stored, so that it can be masked \
                    (repeatable). Without it the page leaves the stderr tails out.
                    """),
            ]),
            CommonOptions.section,
        ],
        epilogue: "Exit codes: 0, 2 bad arguments or FILE cannot be written, 3 unknown run.")

    let runID: String
    let secrets: [String: String]
    let output: String
    let common: CommonOptions

    init(parsing arguments: ParsedArguments) throws(EngineError) {
        secrets = try arguments.variables()
        runID = try singleRunID(arguments, command: "report")
        guard let output = arguments.value("--html"), !output.isEmpty else {
            throw usage("report needs --html FILE (the page to write)")
        }
        self.output = output
        common = try CommonOptions(arguments)
    }

    func run() async throws(EngineError) -> Int32 {
        let directory: StateDirectory
        do { directory = try StateDirectory(path: common.stateDirectory, creating: false) } catch { throw EngineError(error) }
        let store = try RunStore(stateDirectory: directory, readOnly: true)
        for value in secrets.values { PrintMask.shared.add(SecretMask(values: [value])) }
        let report = try HTMLReport.load(runID: runID, stateDirectory: directory, store: store, secrets: secrets)
        let page = Data(report.render().utf8)
        if output == "-" {
            StandardStreams.write(Array(page))
            return 0
        }
        do throws(FileContents.Failure) {
            try FileContents.write(Array(page), to: output)
        } catch where error.code == EISDIR && error.operation == nil {
            throw usage("cannot write \(output): it is a folder; name a file to write the page to")
        } catch {
            let folder = (URL(fileURLWithPath: output).deletingLastPathComponent().path)
            let step = error.operation == "open" ? " (creating a file in \(folder))" : ""
            throw usage("cannot write \(output): \(error)\(step)")
        }
        let path = URL(fileURLWithPath: output).standardizedFileURL.path
        common.emit(json: .object([
            "run_id": .string(runID),
            "file": .string(path),
            "bytes": .int(page.count),
            "steps": .int(report.report.steps.count),
            "attempts": .int(report.attempts.count),
        ])) {
            "Wrote \(output) (\(page.count / 1024 + 1) KiB: \(counted(report.report.steps.count, "step")), "
                + "\(counted(report.attempts.count, "attempt")))\n"
        }
        return 0
    }
}
