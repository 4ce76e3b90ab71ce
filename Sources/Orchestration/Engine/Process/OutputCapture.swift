import Synchronization

/// The memory that one ``OutputDestination/capture(limit:)`` stream is copied into by the
/// ``ProcessLoop`` thread (``OutputPump``), and read by the task running the attempt.
///
/// The pump appends each chunk under a lock, keeping the first `limit` bytes and counting the
/// rest. When the attempt returns, ``seal()`` takes what was kept: output that a background
/// process writes afterwards is still read from the pipe (so the writer never blocks) but no
/// longer kept.
final class OutputCapture: Sendable {
    private struct State {
        var captured = CapturedOutput()
        var sealed = false
    }

    /// The most bytes kept.
    let limit: Int
    private let state = Mutex(State())

    /// Creates an empty capture keeping at most `limit` bytes (a negative limit keeps nothing).
    init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// Keeps what fits of `chunk` under the limit and counts the rest. Called by the loop thread (``ProcessLoop``).
    func append(_ chunk: UnsafeRawBufferPointer) {
        state.withLock { state in
            guard !state.sealed else { return }
            let room = max(0, limit - state.captured.bytes.count)
            let kept = min(room, chunk.count)
            if kept > 0 { state.captured.bytes.append(contentsOf: chunk[0..<kept]) }
            state.captured.droppedBytes += chunk.count - kept
        }
    }

    /// Takes what was captured so far and stops keeping anything that arrives later.
    func seal() -> CapturedOutput {
        state.withLock { state in
            state.sealed = true
            let captured = state.captured
            state.captured = CapturedOutput(droppedBytes: captured.droppedBytes)
            return captured
        }
    }
}
