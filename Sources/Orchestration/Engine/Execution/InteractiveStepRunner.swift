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
/// On a terminal one key answers, without Enter: canonical mode and echo are off while a question
/// waits (signals still work: Ctrl-C stops the run), and the terminal's settings are restored
/// after the key, and at exit if the run ends while a question waits. Elsewhere answers are lines.
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

    public var asksBeforeStarting: Bool { true }

    public func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
        await inner.run(step, context: context)
    }

    /// Asks before the attempt starts (the engine records its start only after the answer).
    public func admit(_ step: Step, context: AttemptContext) async -> Admission {
        if !runAll.withLock({ $0 }) {
            let command = step.processCommand.map { ShellQuoting.line($0.argv) } ?? "(Swift closure)"
            var question = "\nNext: \(TerminalText.escaped(step.id)) (attempt \(context.attempt)): "
                + "\(TerminalText.escaped(command))\n"
            while true {
                write(question + "[c]ontinue, [s]kip, [a]bort, [r]un all? ")
                let answer = await (isatty(input) != 0 ? readKey() : readLine())?
                    .trimmingCharacters(in: .whitespaces).lowercased()
                switch answer {
                case "", "c", "continue":
                    break
                case "s", "skip":
                    return .skip
                case "a", "abort", nil:
                    onAbort()
                    return .abort
                case "r", "run all", "run-all":
                    runAll.withLock { $0 = true }
                default:
                    question = "Please answer c, s, a or r.\n"
                    continue
                }
                break
            }
        }
        return .run
    }

    /// Reads one key in non-canonical mode on a thread of its own, and echoes it: Enter is "",
    /// end of input (Ctrl-D, or a closed terminal) nil. A stop of the run (Ctrl-C: the task is
    /// cancelled) answers nil at once and restores the terminal; the reading thread is left
    /// blocked in its read until the process ends.
    private func readKey() async -> String? {
        let fd = input
        let answer = OneAnswer()
        let key: UInt8? = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<UInt8?, Never>) in
                // Already cancelled: no thread, and the terminal is left as it is.
                guard answer.wait(continuation) else { return }
                Thread {
                    let restore = TerminalModeGuard.enterKeyMode(fd)
                    var byte: UInt8 = 0
                    var n = Glibc.read(fd, &byte, 1)
                    while n < 0 && errno == EINTR { n = Glibc.read(fd, &byte, 1) }
                    if restore { TerminalModeGuard.restore() }
                    answer.give(n == 1 ? byte : nil)
                }.start()
            }
        } onCancel: {
            TerminalModeGuard.restore()
            answer.give(nil)
        }
        guard let key, key != 0x04 else {
            write("\n")
            return nil
        }
        if key == UInt8(ascii: "\n") || key == UInt8(ascii: "\r") {
            write("\n")
            return ""
        }
        let text = String(decoding: [key], as: UTF8.self)
        write(TerminalText.escaped(text) + "\n")
        return text
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

/// The terminal settings saved while a step-through question waits for one key, restored after
/// the key or, when the process ends first, at exit.
enum TerminalModeGuard {
    private static let saved = Mutex<(fd: Int32, settings: termios)?>(nil)
    private static let exitHook: Void = { atexit { TerminalModeGuard.restore() } }()

    /// Turns canonical mode and echo off on `fd` (signals stay on); false when `fd` is not a
    /// terminal whose settings could be read and changed.
    static func enterKeyMode(_ fd: Int32) -> Bool {
        _ = exitHook
        var settings = termios()
        guard tcgetattr(fd, &settings) == 0 else { return false }
        var raw = settings
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        saved.withLock { $0 = (fd, settings) }
        guard tcsetattr(fd, TCSANOW, &raw) == 0 else {
            saved.withLock { $0 = nil }
            return false
        }
        return true
    }

    /// Puts back the settings saved by ``enterKeyMode(_:)``, if any.
    static func restore() {
        guard var entry = saved.withLock({ state -> (fd: Int32, settings: termios)? in
            defer { state = nil }
            return state
        }) else { return }
        _ = tcsetattr(entry.fd, TCSANOW, &entry.settings)
    }
}

/// The one answer of a question: the first of the key and a cancellation resumes the waiting task.
private final class OneAnswer: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<UInt8?, Never>?, early: UInt8??)>((nil, nil))

    /// Registers the waiting task; false, answering it at once, when the answer came first.
    func wait(_ continuation: CheckedContinuation<UInt8?, Never>) -> Bool {
        let early = state.withLock { state -> UInt8?? in
            guard let early = state.early else {
                state.continuation = continuation
                return nil
            }
            return .some(early)
        }
        guard let early else { return true }
        continuation.resume(returning: early)
        return false
    }

    /// The answer (nil: none); later answers are ignored.
    func give(_ key: UInt8?) {
        let continuation = state.withLock { state -> CheckedContinuation<UInt8?, Never>? in
            guard state.early == nil else { return nil }
            state.early = .some(key)
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: key)
    }
}
