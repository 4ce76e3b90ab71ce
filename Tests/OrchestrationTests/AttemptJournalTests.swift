import Foundation
import Glibc
import Testing
import TestSupport
@testable import Orchestration

/// The attempt journal (`runs/<id>/starts`) is a mapped file: its lines are in the page cache as
/// soon as `note` returns, a killed engine's zeros and torn line are skipped when it is opened
/// again, and a full disk is an error, not a `SIGBUS`.
@Suite("Attempt journal: a mapped file")
struct AttemptJournalTests {
    let state = NSTemporaryDirectory() + "journal-\(UUID().uuidString)"
    let runID = "r-journal"
    var path: String { state + "/" + AttemptJournal.relativePath(runID) }

    func starts(_ steps: [(String, Int)]) -> [RunEvent] {
        steps.enumerated().map { index, step in
            RunEvent(seq: Int64(index + 1), runID: runID, kind: .stepStarted, stepID: step.0, attempt: step.1, data: nil)
        }
    }

    func bytes() -> [UInt8] { FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? [] }

    func traces(_ steps: Set<String>) throws -> [String: Set<Int>] {
        AttemptJournal.traces(stateDirectory: try StateDirectory(path: state), runID: runID, stepIDs: steps)
    }

    @Test func linesAreReadableWhileOpenAndTheFileIsExactlyTheLinesOnceClosed() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        var journal: AttemptJournal? = try AttemptJournal(stateDirectory: StateDirectory(path: state), runID: runID)
        try journal?.note(starts([("a", 1), ("b", 1)]))
        try journal?.note(starts([("a", 2)]))
        // Another process reading the file now (resume after a kill -9) finds the lines.
        #expect(try traces(["a", "b"]) == ["a": [1, 2], "b": [1]])
        #expect(bytes().count == AttemptJournal.reserveBytes, "room reserved ahead, zeros after the lines")
        journal = nil
        #expect(String(decoding: bytes(), as: UTF8.self) == "1 a\n1 b\n2 a\n")
        // Opened again, it appends after them.
        journal = try AttemptJournal(stateDirectory: StateDirectory(path: state), runID: runID)
        try journal?.note(starts([("b", 2)]))
        journal = nil
        #expect(String(decoding: bytes(), as: UTF8.self) == "1 a\n1 b\n2 a\n2 b\n")
    }

    /// Lines beyond the mapped part of the file are written with `pwrite`, after the mapped ones.
    @Test func linesBeyondTheMappingAreWrittenInOrder() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        var journal: AttemptJournal? = try AttemptJournal(stateDirectory: StateDirectory(path: state), runID: runID,
                                                          mappedBytes: 16)
        try journal?.note(starts([("a", 1), ("b", 1)]))  // 8 bytes, mapped
        try journal?.note(starts([("c", 1), ("d", 1)]))  // 16 bytes in all, mapped
        try journal?.note(starts([("e", 1)]))            // beyond: written
        #expect(try traces(["a", "b", "c", "d", "e"]) == ["a": [1], "b": [1], "c": [1], "d": [1], "e": [1]])
        journal = nil
        #expect(String(decoding: bytes(), as: UTF8.self) == "1 a\n1 b\n1 c\n1 d\n1 e\n")
    }

    /// What a killed engine leaves: a torn last line and the zeros it had reserved.
    @Test func aKilledEnginesTornLineAndZerosAreSkippedAndTheNextLineStaysWhole() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        _ = try StateDirectory(path: state)
        try FileManager.default.createDirectory(atPath: state + "/runs/" + runID, withIntermediateDirectories: true)
        let left = Array("3 a\n2 bu".utf8) + [UInt8](repeating: 0, count: 70_000)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(left)))
        #expect(try traces(["a", "b", "c"]) == ["a": [3]], "zeros are not a line, nor a torn one a step")

        var journal: AttemptJournal? = try AttemptJournal(stateDirectory: StateDirectory(path: state), runID: runID)
        try journal?.note(starts([("c", 1)]))
        #expect(try traces(["a", "c"]) == ["a": [3], "c": [1]])
        journal = nil
        #expect(String(decoding: bytes(), as: UTF8.self) == "3 a\n2 bu\n1 c\n")
    }

    /// Lines are copied into reserved room: on a full disk the reservation fails with the
    /// kernel's ENOSPC, reported as an error (exit 74), and the process lives on.
    @Test(.enabled(if: canMountTmpfs, "needs to mount a tmpfs (root with CAP_SYS_ADMIN)"))
    func aFullDiskIsAnErrorNotASignal() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        #expect(mountTmpfs(state, options: "size=256k,mode=0700"))
        defer { unmount(state) }
        let journal = try AttemptJournal(stateDirectory: StateDirectory(path: state), runID: runID)
        let filler = open(state + "/filler", O_WRONLY | O_CREAT, 0o600)
        #expect(filler >= 0)
        let block = [UInt8](repeating: 0, count: 4096)
        while write(filler, block, block.count) > 0 {}
        close(filler)
        let long = String(repeating: "s", count: 1_000)
        var failure: EngineError?
        for attempt in 1...200 where failure == nil {
            do { try journal.note(starts([(long, attempt)])) } catch { failure = error }
        }
        #expect(failure?.exitCode == 74)
        #expect(failure?.message.contains("space") == true, "\(String(describing: failure?.message))")
    }
}
