import Foundation
import Glibc
import Testing
@testable import Orchestration

/// A scratch folder, removed at the end.
private final class ScratchFolder {
    let path: String
    init() {
        var template = Array((NSTemporaryDirectory() + "omnibase-eventlog-XXXXXX").utf8CString)
        path = String(cString: mkdtemp(&template)!)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

private func contents(_ path: String) -> [UInt8] { FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? [] }

private func overwrite(_ path: String, with bytes: some Collection<UInt8>) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A real run recorded in a temporary state folder: its events in the database and its
/// `events.jsonl` as the engine wrote it.
private struct RecordedRun {
    let folder: ScratchFolder
    let stateDirectory: StateDirectory
    let runID: String
    let eventsPath: String
    let original: [UInt8]
    let stored: [RunEvent]

    static func make() async throws -> RecordedRun {
        let folder = ScratchFolder()
        // Retries, a failing non-critical step, a skipped dependent: events with and without
        // step ids, attempts and data.
        let plan = """
        {"plan_id": "EVENTS", "version": "1", "globals": {"max_concurrency": 2},
         "steps": [
          {"id": "a", "command": "true"},
          {"id": "flaky", "command": "sh", "args": ["-c", "[ \\"$OMNIBASE_ATTEMPT\\" -ge 2 ] || exit 3"],
           "retries": 2, "retry_delay_sec": 0.01},
          {"id": "optional", "command": "sh", "args": ["-c", "echo \\"quote \\\\\\" and é\\"; exit 1"], "critical": false,
           "on_failure": "skip_dependents"},
          {"id": "needs-optional", "command": "true", "depends_on": ["optional"], "critical": false},
          {"id": "z", "command": "true", "depends_on": ["a", "flaky"]}
         ]}
        """
        let planPath = folder.path + "/plan.json"
        try plan.write(toFile: planPath, atomically: true, encoding: .utf8)
        let loaded = try PlanLoader.load(path: planPath)
        let session = try RunSession(stateDirectory: folder.path + "/state")
        let report = try await session.start(loaded)
        #expect(report.status == .succeeded)
        let store = try RunStore(stateDirectory: session.stateDirectory, readOnly: true)
        let stored = try store.events(report.runID)
        let eventsPath = folder.path + "/state/runs/\(report.runID)/events.jsonl"
        return RecordedRun(folder: folder, stateDirectory: session.stateDirectory, runID: report.runID, eventsPath: eventsPath,
                           original: contents(eventsPath), stored: stored)
    }

    /// Offsets where lines start.
    var lineStarts: [Int] {
        [0] + original.indices.filter { original[$0] == UInt8(ascii: "\n") && $0 + 1 < original.count }.map { $0 + 1 }
    }

    func repair() throws {
        let file = try EventLogFile(stateDirectory: stateDirectory, runID: runID)
        try file.repair(from: stored)
    }
}

@Suite("events.jsonl: torn tails are repaired from runs.db", .serialized, .timeLimit(.minutes(5)))
struct EventLogFileTests {
    @Test func theEngineWroteExactlyTheDatabaseEvents() async throws {
        let run = try await RecordedRun.make()
        let lines = run.original.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        #expect(lines.last?.isEmpty == true, "the file ends with a newline")
        #expect(lines.count - 1 == run.stored.count)
        let parsed = EventLogFile.read(path: run.eventsPath)
        #expect(parsed.validLength == run.original.count)
        #expect(parsed.events.compactMap { $0["seq"]?.intValue } == run.stored.map { Int($0.seq) })
        // Repairing a whole file changes nothing.
        try run.repair()
        #expect(contents(run.eventsPath) == run.original)
    }

    @Test func aCutAtEveryByteOffsetOfTheLastThreeLinesIsRepairedToTheOriginal() async throws {
        let run = try await RecordedRun.make()
        let starts = run.lineStarts
        #expect(starts.count == run.stored.count)
        let firstCut = starts[starts.count - 3]
        var mismatches: [Int] = []
        for cut in firstCut...run.original.count {
            let prefix = run.original[0..<cut]
            try overwrite(run.eventsPath, with: prefix)
            // Reading keeps whole lines only.
            let wholeLines = prefix.filter { $0 == UInt8(ascii: "\n") }.count
            let validLength = (prefix.lastIndex(of: UInt8(ascii: "\n")) ?? -1) + 1
            let read = EventLogFile.read(path: run.eventsPath)
            #expect(read.fileLength == cut, "cut at \(cut)")
            #expect(read.validLength == validLength, "cut at \(cut)")
            #expect(read.events.count == wholeLines, "cut at \(cut)")
            #expect(read.events.compactMap { $0["seq"]?.intValue } == (0..<wholeLines).map { $0 + 1 },
                    "cut at \(cut)")
            // Repairing restores the file the engine wrote, byte for byte.
            try run.repair()
            let repaired = contents(run.eventsPath)
            if repaired != run.original { mismatches.append(cut) }
            #expect(repaired.count == run.original.count, "cut at \(cut): \(repaired.count) bytes after repair")
            #expect(EventLogFile.read(path: run.eventsPath).events.count == run.stored.count, "cut at \(cut)")
        }
        if let cut = mismatches.first {
            try overwrite(run.eventsPath, with: run.original[0..<cut])
            try run.repair()
            let repaired = contents(run.eventsPath)
            let at = zip(repaired, run.original).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
            let lineStart = starts.last { $0 <= at } ?? 0
            let lineEnd = run.original[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? run.original.count
            let repairedEnd = repaired[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? repaired.count
            Issue.record("""
                \(mismatches.count) cuts (first at \(cut)) were not repaired to the original bytes; first difference at byte \(at):
                written:  \(String(decoding: run.original[lineStart..<lineEnd], as: UTF8.self))
                repaired: \(String(decoding: repaired[lineStart..<repairedEnd], as: UTF8.self))
                """)
        }
    }

    /// The repair path as the engine uses it: `resume` of a failed run whose events.jsonl was
    /// torn repairs the tail from the database, then appends the new events after it.
    @Test(arguments: [0, 1, 2])
    func resumeRepairsATornTailBeforeAppending(lineFromEnd: Int) async throws {
        for position in ["line start", "one byte in", "middle", "before newline"] {
            let folder = ScratchFolder()
            let marker = folder.path + "/fail"
            #expect(FileManager.default.createFile(atPath: marker, contents: nil))
            let plan = """
            {"plan_id": "RESUME", "version": "1", "steps": [
              {"id": "a", "command": "true"},
              {"id": "b", "command": "sh", "args": ["-c", "[ ! -e '\(marker)' ]"], "depends_on": ["a"]}
            ]}
            """
            let planPath = folder.path + "/plan.json"
            try plan.write(toFile: planPath, atomically: true, encoding: .utf8)
            let session = try RunSession(stateDirectory: folder.path + "/state")
            let failed = try await session.start(try PlanLoader.load(path: planPath))
            #expect(failed.status == .failed)
            let path = folder.path + "/state/runs/\(failed.runID)/events.jsonl"
            let original = contents(path)
            let ends = original.indices.filter { original[$0] == UInt8(ascii: "\n") }
            let lineEnd = ends[ends.count - 1 - lineFromEnd]
            let lineStart = ends.count - 2 - lineFromEnd >= 0 ? ends[ends.count - 2 - lineFromEnd] + 1 : 0
            let cut = switch position {
            case "line start": lineStart
            case "one byte in": lineStart + 1
            case "middle": (lineStart + lineEnd) / 2
            default: lineEnd
            }
            try overwrite(path, with: original[0..<cut])

            try FileManager.default.removeItem(atPath: marker)
            let resumed = try await session.resume(runID: failed.runID)
            #expect(resumed.status == .succeeded, "\(position) of line -\(lineFromEnd + 1)")
            let final = contents(path)
            #expect(final.starts(with: original), "\(position) of line -\(lineFromEnd + 1): the repaired file lost what was written")
            let stored = try RunStore(stateDirectory: session.stateDirectory, readOnly: true).events(failed.runID)
            let read = EventLogFile.read(path: path)
            #expect(read.validLength == final.count, "\(position) of line -\(lineFromEnd + 1): torn line left in the file")
            #expect(read.events.compactMap { $0["seq"]?.intValue } == stored.map { Int($0.seq) },
                    "\(position) of line -\(lineFromEnd + 1)")
            #expect(read.events.compactMap { $0["type"]?.stringValue } == stored.map(\.kind.rawValue))
        }
    }

    @Test func anUnparsableWholeLineAndEverythingAfterItIsReplaced() async throws {
        let run = try await RecordedRun.make()
        let starts = run.lineStarts
        let keep = starts[starts.count - 4]
        try overwrite(run.eventsPath, with: run.original[0..<keep] + Array("{\"seq\": 99, oops}\n{\"seq\": 100}\n".utf8))
        let read = EventLogFile.read(path: run.eventsPath)
        #expect(read.validLength == keep)
        #expect(read.events.count == starts.count - 4)
        try run.repair()
        #expect(contents(run.eventsPath) == run.original)
    }

    @Test func aMissingFileIsRebuiltFromTheDatabase() async throws {
        let run = try await RecordedRun.make()
        try FileManager.default.removeItem(atPath: run.eventsPath)
        #expect(EventLogFile.read(path: run.eventsPath).events.isEmpty)
        try run.repair()
        #expect(contents(run.eventsPath) == run.original)
        var status = stat()
        #expect(stat(run.eventsPath, &status) == 0 && status.st_mode & 0o777 == 0o600)
    }
}
