import Foundation
import Synchronization

/// Step-through (`run --step`): before each attempt, shows the step's command and asks
/// continue / skip / abort / run-all on a terminal.
///
/// - continue (`c` or Enter) runs the attempt;
/// - skip (`s`) does not run it: the step ends `skipped` ("skipped by the user") and so do its
///   dependents;
/// - abort (`a`, or end of input) stops the run as Ctrl-C would: the step and everything not
///   started end `cancelled`;
/// - run-all (`r`) runs this and every later step without asking.
///
/// Use it with a concurrency of 1, so one question is asked at a time.
package final class InteractiveStepRunner: StepRunner {
    private let inner: any StepRunner
    private let input: Int32
    private let output: Int32
    private let onAbort: @Sendable () -> Void
    private let runAll = Mutex(false)

    /// Wraps a runner.
    /// - Parameters:
    ///   - input: where answers are read (a terminal).
    ///   - output: where questions are written.
    ///   - onAbort: called when the user aborts (request a stop of the run).
    public init(wrapping inner: any StepRunner = LocalStepRunner(), input: Int32 = 0, output: Int32 = 2,
                onAbort: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.input = input
        self.output = output
        self.onAbort = onAbort
    }

    public func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
        if !runAll.withLock({ $0 }) {
            let command = step.processCommand.map { ShellQuoting.line($0.argv) } ?? "(Swift closure)"
            var question = "\nNext: \(TerminalText.escaped(step.id)) (attempt \(context.attempt)): "
                + "\(TerminalText.escaped(command))\n"
            while true {
                write(question + "[c]ontinue, [s]kip, [a]bort, [r]un all? ")
                let answer = await readLine()?.trimmingCharacters(in: .whitespaces).lowercased()
                switch answer {
                case "", "c", "continue":
                    break
                case "s", "skip":
                    return AttemptOutcome(result: .skipped, error: "skipped by the user")
                case "a", "abort", nil:
                    onAbort()
                    return AttemptOutcome(result: .cancelled, error: "aborted by the user")
                case "r", "run all", "run-all":
                    runAll.withLock { $0 = true }
                default:
                    question = "Please answer c, s, a or r.\n"
                    continue
                }
                break
            }
        }
        return await inner.run(step, context: context)
    }

    /// Reads one line on a thread of its own (a blocking read must not hold a pool thread).
    private func readLine() async -> String? {
        let fd = input
        return await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            Thread {
                var bytes: [UInt8] = []
                var byte: UInt8 = 0
                while true {
                    let n = Glibc.read(fd, &byte, 1)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { continuation.resume(returning: bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)); return }
                    if byte == UInt8(ascii: "\n") { break }
                    bytes.append(byte)
                }
                continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
            }.start()
        }
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }
}
