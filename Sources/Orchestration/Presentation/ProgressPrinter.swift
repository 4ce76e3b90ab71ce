import Foundation
import Synchronization
import Orchestration

/// Shows a run's progress while it runs, on a stream (stderr).
///
/// On a colour-capable terminal it redraws one block in place: done/total with a bar, an ETA from earlier runs'
/// durations, the running steps with their elapsed time, and failures as they happen. Elsewhere
/// (a pipe, a log, `TERM=dumb`, `CI=true`, `NO_COLOR`, `--no-color`: no cursor movement there)
/// it prints one plain line per finished step (`Step 3/10: build ... ok 1.20s`). Never both.
public final class ProgressPrinter: RunObserver {
    /// How progress is drawn.
    public enum Mode: Sendable {
        /// A block redrawn in place (a terminal).
        case live
        /// One line per event (a log, a pipe).
        case lines
    }

    private struct State {
        var total = 0
        var done = 0
        var running: [String: Date] = [:]
        /// When each step's first attempt started: a finished step's time runs from here, as in the report.
        var firstStarted: [String: Date] = [:]
        var runningOrder: [String] = []
        var failures: [String] = []
        var drawnLines = 0
        var remainingEstimate: [String: Double] = [:]
        var started: Date?
        var finished = false
        /// The values of the secret outputs of the steps that succeeded so far (their events
        /// carry them verbatim): masked in the tails too.
        var secretOutputs = SecretMask(values: [])
    }

    private let state = Mutex(State())
    private let mode: Mode
    private let style: TextStyle
    private let fd: Int32
    private let planSteps: [String]
    private let expected: [String: Double]
    private let slots: Int
    private let failureTails: FailureTailSource?

    /// Where the printer reads a failed attempt's stderr from (``FailureTail``).
    public struct FailureTailSource: Sendable {
        /// The run's state folder.
        public var stateDirectory: StateDirectory
        /// The run's secret values.
        public var mask: SecretMask

        /// Creates a source.
        public init(stateDirectory: StateDirectory, mask: SecretMask) {
            self.stateDirectory = stateDirectory
            self.mask = mask
        }
    }

    /// Creates a printer.
    /// - Parameters:
    ///   - stepIDs: the plan's steps (for done/total).
    ///   - expectedDurations: median seconds of each step in earlier runs (for the ETA); empty = no ETA.
    ///   - slots: the concurrency limit (for the ETA).
    ///   - alreadyDone: steps finished in an earlier session of the run (resume).
    ///   - fd: where to draw (2 = stderr).
    ///   - failureTails: where the lines mode reads the stderr tail it prints under each failed
    ///     attempt; nil for none.
    public init(mode: Mode, style: TextStyle, stepIDs: [String], expectedDurations: [String: Double] = [:],
                slots: Int, alreadyDone: Int = 0, fd: Int32 = 2, failureTails: FailureTailSource? = nil) {
        self.failureTails = failureTails
        self.mode = mode
        self.style = style
        self.fd = fd
        planSteps = stepIDs
        expected = expectedDurations
        self.slots = max(1, slots)
        state.withLock { state in
            state.total = stepIDs.count
            state.done = alreadyDone
        }
    }

    public func record(_ events: [RunEvent]) async throws {
        var lines: [String] = []
        state.withLock { state in
            for event in events { apply(event, to: &state, lines: &lines) }
        }
        switch mode {
        case .lines:
            if !lines.isEmpty { write(lines.joined(separator: "\n") + "\n") }
        case .live:
            redraw()
        }
    }

    /// Redraws the live block (call periodically so elapsed times move).
    public func tick() {
        guard mode == .live else { return }
        redraw()
    }

    /// Removes the live block before the final summary is printed.
    public func clear() {
        guard mode == .live else { return }
        let text = state.withLock { state -> String in
            defer { state.drawnLines = 0 }
            return state.drawnLines > 0 ? "\u{1B}[\(state.drawnLines)A\u{1B}[J" : ""
        }
        if !text.isEmpty { write(text) }
    }

    private func apply(_ event: RunEvent, to state: inout State, lines: inout [String]) {
        // Text from the plan or a step reaches the terminal escaped (``TerminalText``): `key` is
        // the step id as it is (it keys the running table), `id` the id as drawn.
        let key = event.stepID ?? ""
        let id = TerminalText.escaped(key)
        if case .stepSucceeded(let end?) = event.payload, end.outputs.contains(where: \.isSecret) {
            state.secretOutputs = state.secretOutputs.merging(SecretMask(values: end.outputs.filter(\.isSecret).map(\.value)))
        }
        switch event.payload {
        case .runStarted, .runResumed:
            state.started = state.started ?? event.timestamp
        case .stepStarted:
            if state.running[key] == nil { state.runningOrder.append(key) }
            state.running[key] = event.timestamp
            if state.firstStarted[key] == nil { state.firstStarted[key] = event.timestamp }
        case .stepAttemptFailed:
            let error = TerminalText.escaped(event.payload.attemptEnd?.error ?? "failed")
            lines.append(line("\(style.marker(.cancelled)) \(id) attempt \(event.attempt ?? 0) failed: \(error)"))
            if mode == .lines, let source = failureTails, let attempt = event.attempt,
               let tail = FailureTail.read(stateDirectory: source.stateDirectory, runID: event.runID, stepID: key,
                                           attempt: attempt,
                                           mask: state.secretOutputs.isEmpty ? source.mask : source.mask.merging(state.secretOutputs)) {
                lines += tail.rendered(width: style.width)
            }
        case .stepRetry(let delay):
            lines.append(line("  retrying \(id) (attempt \(event.attempt ?? 0)) in \(formatDuration(delay))"))
            state.running[key] = nil
            state.runningOrder.removeAll { $0 == key }
        case .stepSucceeded, .stepFailed, .stepSkipped, .stepCancelled:
            state.done += 1
            // From the first attempt's start to the end, from the same events and the same way as
            // the report's `finished_at - started_at` (RunReportBuilder).
            let began = state.firstStarted[key] ?? state.running[key]
            state.running[key] = nil
            state.runningOrder.removeAll { $0 == key }
            // In the printed milliseconds, as the report takes them (Timestamp.interval): the
            // exact interval rounded otherwise now and then (0.63 s live, 0.62 s in the report).
            let duration = began.map { Timestamp.interval(from: $0, to: event.timestamp) }
            let word: String
            let status: StepStatus
            switch event.kind {
            case .stepSucceeded: (word, status) = ("ok", .succeeded)
            case .stepFailed:
                (word, status) = ("FAILED", .failed)
                state.failures.append("\(id): \(TerminalText.escaped(event.payload.attemptEnd?.error ?? "failed"))")
            case .stepSkipped: (word, status) = ("skipped", .skipped)
            default: (word, status) = ("cancelled", .cancelled)
            }
            let detail = event.payload.reason.map { " (\(TerminalText.escaped($0)))" } ?? ""
            let time = duration.map { " " + formatDuration($0) } ?? ""
            // Fitted first, then coloured: colour codes take no columns.
            let text = line("Step \(state.done)/\(state.total): \(id) ... \(word)\(time)\(detail)")
            lines.append(text.replacingOccurrences(of: " ... \(word)", with: " ... \(style.paint(word, status))"))
        case .runFinished:
            state.finished = true
        case .stepSubmitted:
            break
        }
    }

    private func line(_ text: String) -> String { truncate(text, to: style.width) }

    private func redraw() {
        let text = state.withLock { state -> String in
            let now = Date()
            var block: [String] = []
            let fraction = state.total == 0 ? 1 : Double(state.done) / Double(state.total)
            let barWidth = 24
            let filled = Int((fraction * Double(barWidth)).rounded(.down))
            let bar = style.rich
                ? String(repeating: "█", count: filled) + String(repeating: "░", count: barWidth - filled)
                : String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
            var header = "\(state.done)/\(state.total) done [\(bar)] \(Int(fraction * 100))%"
            if let eta = eta(state, now: now) { header += "  ETA \(formatDuration(eta))" }
            block.append(line(header))
            for id in state.runningOrder.prefix(8) {
                let elapsed = state.running[id].map { now.timeIntervalSince($0) } ?? 0
                block.append(line("  \(style.marker(.running)) \(TerminalText.escaped(id)) \(formatDuration(elapsed))"))
            }
            if state.runningOrder.count > 8 { block.append("  ... and \(state.runningOrder.count - 8) more running") }
            for failure in state.failures.suffix(5) { block.append(line("  \(style.marker(.failed)) \(failure)")) }
            var out = state.drawnLines > 0 ? "\u{1B}[\(state.drawnLines)A\u{1B}[J" : ""
            out += block.joined(separator: "\n") + "\n"
            state.drawnLines = block.count
            return out
        }
        write(text)
    }

    /// Remaining work over the slots, never less than the longest remaining step; nil without history.
    private func eta(_ state: State, now: Date) -> Double? {
        guard !expected.isEmpty, !state.finished else { return nil }
        var remaining = 0.0
        var longest = 0.0
        var known = false
        for id in planSteps {
            guard let typical = expected[id] else { continue }
            known = true
            if let began = state.running[id] {
                let left = max(0, typical - now.timeIntervalSince(began))
                remaining += left
                longest = max(longest, left)
            }
        }
        // Steps not started yet: those that are neither running nor counted done.
        let notStarted = max(0, state.total - state.done - state.running.count)
        if notStarted > 0 {
            let pending = planSteps.filter { state.running[$0] == nil }.compactMap { expected[$0] }
            let average = pending.isEmpty ? 0 : pending.reduce(0, +) / Double(pending.count)
            remaining += average * Double(notStarted)
        }
        return known ? max(longest, remaining / Double(slots)) : nil
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }
}
