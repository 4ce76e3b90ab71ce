import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport
@testable import Orchestration

/// The thread that appends committed events to `events.jsonl`: every batch, in the order it was
/// handed over, by the time `close` returns; a write that fails is reported once, with the last
/// `seq` it did not copy.
@Suite("EventCopier: events.jsonl on a thread of its own", .timeLimit(.minutes(1)))
struct EventCopierTests {
    /// A state folder with a run folder, at `path/state` (a mount point for the full-disk test).
    final class Folder {
        let path: String
        let state: String
        let runID = "run-copier-test"

        init() {
            var template = Array((NSTemporaryDirectory() + "omnibase-copier-XXXXXX").utf8CString)
            path = String(cString: mkdtemp(&template)!)
            state = path + "/state"
        }

        deinit { try? FileManager.default.removeItem(atPath: path) }

        func eventsFile() throws -> sending EventLogFile {
            let directory = try StateDirectory(path: state)
            _ = try directory.ensureSubdirectory("runs/\(runID)")
            return try EventLogFile(stateDirectory: directory, runID: runID)
        }

        /// Events `first...last`, each with a data object of `padding` bytes.
        func batch(_ first: Int64, _ last: Int64, padding: Int = 0) -> [EncodedEvent] {
            (first...last).map { seq in
                EncodedEvent(RunEvent(seq: seq, runID: runID, kind: .stepSucceeded, stepID: "s\(seq)", attempt: 1,
                                      data: ["exit_code": 0, "note": .string(String(repeating: "x", count: padding))]))
            }
        }
    }

    @Test func everyBatchIsWrittenInTheOrderItWasHandedOverBeforeCloseReturns() throws {
        let folder = Folder()
        let failures = Mutex<[Int64]>([])
        let copier = EventCopier(file: try folder.eventsFile()) { _, seq in failures.withLock { $0.append(seq) } }
        // 2,000 batches of 1 to 5 events, handed over as fast as one thread can: most of them
        // queue up while the thread writes the ones before.
        var next: Int64 = 1
        for index in 0..<2_000 {
            let size = Int64(index % 5) + 1
            copier.copy(folder.batch(next, next + size - 1))
            next += size
        }
        copier.close()
        let lines = EventLogFile.read(path: "\(folder.state)/runs/\(folder.runID)/events.jsonl")
        let seqs = lines.events.compactMap { $0["seq"]?.intValue }
        let firstWrong = zip(seqs, 1...).first { $0.0 != $0.1 }
        #expect(seqs.count == Int(next) - 1 && firstWrong == nil,
                "\(seqs.count) lines for \(next - 1) events; first out of order: \(String(describing: firstWrong))")
        #expect(lines.validLength == lines.fileLength, "no torn line")
        #expect(failures.withLock { $0 }.isEmpty)
    }

    /// On a full disk the write fails with the kernel's ENOSPC: reported once, with the batch's
    /// last `seq`; batches handed over after it are not written (the store has failed), and
    /// `close` still returns.
    @Test(.enabled(if: canMountTmpfs, "needs to mount a tmpfs (root with CAP_SYS_ADMIN)"))
    func aFailedWriteIsReportedOnceAndLaterBatchesAreDropped() throws {
        let folder = Folder()
        #expect(mountTmpfs(folder.state, options: "size=64k,mode=0700"))
        defer { unmount(folder.state) }
        let failures = Mutex<[(message: String, seq: Int64)]>([])
        let copier = EventCopier(file: try folder.eventsFile()) { error, seq in
            failures.withLock { $0.append((error.message, seq)) }
        }
        // Fill the file system.
        let filler = open(folder.state + "/filler", O_WRONLY | O_CREAT, 0o600)
        #expect(filler >= 0)
        let block = [UInt8](repeating: 0, count: 4096)
        while write(filler, block, block.count) > 0 {}
        close(filler)
        copier.copy(folder.batch(1, 50, padding: 200))
        let deadline = ContinuousClock.now + .seconds(10)
        while failures.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline { usleep(1_000) }
        // The disk is still full: a batch that was written would fail and be reported again.
        copier.copy(folder.batch(51, 60))
        copier.close()
        let seen = failures.withLock { $0 }
        #expect(seen.count == 1, "\(seen)")
        #expect(seen.first?.seq == 50, "the last seq of what was not copied: \(seen)")
        #expect(seen.first?.message.contains("space") == true, "\(seen)")
    }
}
