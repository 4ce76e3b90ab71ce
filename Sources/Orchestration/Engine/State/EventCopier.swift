import Foundation
import Synchronization

/// Appends committed events to a run's `events.jsonl`, in the order they were committed, on a
/// thread of its own for the store writer's group commits: in an in-process run the writer is
/// the busiest thread, and building and writing the lines was a sixth of its work.
///
/// A commit made inline by an executor that would otherwise only wait (a chain's next link,
/// ``CommitGate/commitIfIdle(upTo:)``) is copied on the executor's thread instead, when nothing is
/// queued before it: handing it over cost a wake-up of this thread per link, on the core the
/// link's step was about to run on (chain of 3,000, `-j2`: 7.8 context switches per link instead of
/// 6.3, and slower).
///
/// Batches queued while the thread writes go out in its next `write`. The copy may lag the
/// database by the batches queued; a killed engine can leave it short, and resume repairs it
/// from the database (``EventLogFile/repair(from:)``), as before.
final class EventCopier: Sendable {
    private struct State {
        var queued: [[EncodedEvent]] = []
        /// A write is in progress (on the thread, or inline): nobody else writes meanwhile.
        var writing = false
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
        let thread = Thread { [self] in
            while true {
                wakeup.wait()
                let (batches, closing) = state.withLock { state -> ([[EncodedEvent]], Bool) in
                    // An inline write in progress signals again when it ends, if batches queued.
                    guard !state.writing else { return ([], state.closing) }
                    // Taken, not emptied in place: the returned array shares the buffer, and
                    // emptying a shared buffer keeping its capacity would allocate another.
                    let queued = state.queued
                    state.queued = []
                    state.writing = !queued.isEmpty && !state.failed
                    return (state.writing ? queued : [], state.closing)
                }
                if !batches.isEmpty {
                    write(batches)
                    state.withLock { $0.writing = false }
                }
                if closing && state.withLock({ $0.queued.isEmpty && !$0.writing }) { break }
            }
            stopped.signal()
        }
        thread.name = "omnibase-events-copy"
        thread.start()
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

    /// Copies a committed batch on the caller's thread when nothing is queued or being written
    /// before it; otherwise queues it for the thread (call in commit order).
    func copyInline(_ events: [EncodedEvent]) {
        guard !events.isEmpty else { return }
        let mine = state.withLock { state -> Bool in
            guard state.queued.isEmpty && !state.writing && !state.failed else { return false }
            state.writing = true
            return true
        }
        guard mine else { return copy(events) }
        write([events])
        let queuedMeanwhile = state.withLock { state -> Bool in
            state.writing = false
            return !state.queued.isEmpty
        }
        if queuedMeanwhile { wakeup.signal() }
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
