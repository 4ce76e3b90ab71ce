import Foundation
import Orchestration

/// The last lines of a failed attempt's stderr, as the human views show them under the failure
/// (like make and ninja show a failed command's output): at most ``maxLines`` lines and
/// ``maxBytes`` bytes, the run's secret values masked, control characters removed or escaped
/// (``LogTail``, ``TerminalText``), with a note naming the whole log when something was cut.
public struct FailureTail: Sendable, Hashable {
    /// The most lines shown per failed attempt.
    public static let maxLines = 10
    /// The most bytes shown per failed attempt.
    public static let maxBytes = 2048

    /// The lines, masked and safe to print.
    public var lines: [String]
    /// Whether the log held more than ``lines``.
    public var cut: Bool
    /// The log's path as shown in the note (relative to the state folder).
    public var path: String

    /// Creates a tail.
    public init(lines: [String], cut: Bool, path: String) {
        self.lines = lines
        self.cut = cut
        self.path = path
    }

    /// The stderr log of one attempt of a run: `runs/<run>/logs/<step>.<attempt>.err`.
    /// - Returns: nil for a step id that is not a plain file name.
    public static func stderrPath(runID: String, stepID: String, attempt: Int) -> String? {
        guard !stepID.contains("/"), stepID != "..", stepID != ".", !runID.contains("/") else { return nil }
        return AttemptLog(stepID: stepID, attempt: attempt, stream: .stderr).relativePath(runID: runID)
    }

    /// Reads the tail of an attempt's stderr.
    ///
    /// It reads ``maxBytes`` plus the longest secret value's length from the end of the log,
    /// masks, and only then keeps the last ``maxBytes``: a secret value that began before the
    /// shown part is masked as a whole rather than shown in part.
    /// - Returns: nil when the log is absent, empty or only whitespace.
    public static func read(stateDirectory: StateDirectory, runID: String, stepID: String, attempt: Int,
                            mask: SecretMask) -> FailureTail? {
        guard attempt > 0, let relative = stderrPath(runID: runID, stepID: stepID, attempt: attempt) else { return nil }
        guard let raw = LogTail.read(path: stateDirectory.path + "/" + relative, maxLines: maxLines,
                                     maxBytes: maxBytes + mask.longestValueBytes) else { return nil }
        var cut = raw.truncated
        var text = mask.isEmpty ? raw.text : mask.apply(raw.text)
        if text.utf8.count > maxBytes {
            // Keep whole lines from the end when one fits, else the end of the last line.
            let bytes = Array(text.utf8)
            var start = bytes.count - maxBytes
            while start < bytes.count, bytes[start] & 0xC0 == 0x80 { start += 1 }
            if let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")), newline + 1 < bytes.count,
               start == 0 || bytes[start - 1] != UInt8(ascii: "\n") {
                start = newline + 1
            }
            text = String(decoding: bytes[start...], as: UTF8.self)
            cut = true
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            TerminalText.escaped($0.replacingOccurrences(of: "\t", with: "    "))
        }
        return FailureTail(lines: lines, cut: cut, path: relative)
    }

    /// The tail of each failed step's last attempt in a run's report, by step id.
    public static func ofFailedSteps(_ report: RunReport, stateDirectory: StateDirectory,
                                     mask: SecretMask) -> [String: FailureTail] {
        var tails: [String: FailureTail] = [:]
        for step in report.steps where step.status == .failed {
            tails[step.id] = read(stateDirectory: stateDirectory, runID: report.runID, stepID: step.id,
                                  attempt: step.attempts, mask: mask)
        }
        return tails
    }

    /// The tail as report lines: each line indented and cut to `width` columns, then, when the
    /// log held more, a note naming it.
    public func rendered(indent: String = "      | ", width: Int) -> [String] {
        var out = lines.map { truncate(indent + $0, to: max(indent.count + 8, width)) }
        if cut {
            out.append(truncate(String(repeating: " ", count: indent.count - 2)
                                + "(cut: the last \(lines.count == 1 ? "line" : "\(lines.count) lines") shown; "
                                + "the whole log is \(TerminalText.escaped(path)))", to: max(indent.count + 8, width)))
        }
        return out
    }
}
