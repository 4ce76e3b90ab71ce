import Foundation
import Synchronization

/// Appends committed events to a run's `events.jsonl`, in the order they were committed, on a
/// thread of its own for the store writer's group commits: in an in-process run the writer is
/// the busiest thread, and building and writing the lines was a sixth of its work.
///
/// Batches queued while the thread writes go out in its next `write`. The copy may lag the
/// database by the batches queued; a killed engine can leave it short, and resume repairs it
/// from the database (``EventLogFile/repair(from:)``), as before.
final class EventCopier: Sendable {
    private struct State {
        var queued: [[EncodedEvent]] = []
        var closing = false
        /// A write failed: later batches are dropped (the store has failed and commits no more).
        var failed = false
    }

    private let state = Mutex(State())
    private let file: Mutex<EventLogFile>
    private let failed: @Sendable (EngineError, Int64) -> Void
    private let wakeup = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts the thread.
    /// - Parameters:
    ///   - file: the run's events file (its tail already repaired); the copier owns it from now.
    ///   - failed: called when a write fails, with the error and the last `seq` of the batch that
    ///     was not copied (on the thread that wrote).
    init(file: sending EventLogFile, failed: @escaping @Sendable (EngineError, Int64) -> Void) {
        self.file = Mutex(file)
        self.failed = failed
        // The thread holds the copier until it stops (``close()``).
        startThread(named: "omnibase-events") { [self] in
            while true {
                wakeup.wait()
                let (batches, closing) = state.withLock { state -> ([[EncodedEvent]], Bool) in
                    // Taken, not emptied in place: the returned array shares the buffer, and
                    // emptying a shared buffer keeping its capacity would allocate another.
                    let queued = state.queued
                    state.queued = []
                    return (state.failed ? [] : queued, state.closing)
                }
                if !batches.isEmpty { write(batches) }
                if closing && state.withLock({ $0.queued.isEmpty }) { break }
            }
            stopped.signal()
        }
    }

    /// Queues a committed batch for the thread (call in commit order).
    func copy(_ events: [EncodedEvent]) {
        guard !events.isEmpty else { return }
        let wasEmpty = state.withLock { state -> Bool in
            state.queued.append(events)
            return state.queued.count == 1
        }
        // The thread takes everything queued when it wakes: one signal per batch it has not seen.
        if wasEmpty { wakeup.signal() }
    }

    /// Appends batches in one write (not joined into one array first: that copied every event).
    private func write(_ batches: [[EncodedEvent]]) {
        do {
            try file.withLock { try $0.append(batches: batches) }
        } catch {
            state.withLock { $0.failed = true }
            failed(EngineError(error), batches.last?.last?.event.seq ?? 0)
        }
    }

    /// Writes what is queued, then stops the thread; returns when it has stopped. Call once no
    /// more batches come.
    func close() {
        state.withLock { $0.closing = true }
        wakeup.signal()
        stopped.wait()
    }
}
