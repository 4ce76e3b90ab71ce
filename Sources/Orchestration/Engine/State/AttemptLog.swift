import Foundation

/// Where an attempt's output lives in the state folder: `runs/<run_id>/logs/<step_id>.<attempt>.out`
/// and `.err` (SPEC §3). This is the one place the layout is written: the runners that write the
/// logs (through ``AttemptContext``), the readers (failure snapshot, stage report, HTML report,
/// monitor, the agents' CI) and the resume's trace scan all go through it. Every executor writes
/// here (Slurm jobs too: the state folder is on a file system the nodes share, SPEC §9).
/// Beside the logs, each attempt has its outputs file, `<step_id>.<attempt>.outputs`
/// (``OutputFile/fileName(stepID:attempt:)``), which is not a log: readers of logs skip it.
public struct AttemptLog: Sendable, Hashable {
    /// The two streams of an attempt.
    public enum Stream: String, Sendable, Hashable, CaseIterable {
        case stdout = "out"
        case stderr = "err"
    }

    /// The step.
    public var stepID: String
    /// The attempt (1-based).
    public var attempt: Int
    /// The stream.
    public var stream: Stream

    /// Names an attempt's log.
    public init(stepID: String, attempt: Int, stream: Stream) {
        self.stepID = stepID
        self.attempt = attempt
        self.stream = stream
    }

    /// The file's name in the run's `logs` folder: `build.3.out`.
    public var fileName: String { "\(stepID).\(attempt).\(stream.rawValue)" }

    /// A log file's name read back (`build.3.out`; step ids may hold dots themselves), or nil
    /// for any other name.
    public init?(fileName name: String) {
        guard let dot = name.lastIndex(of: "."), let stream = Stream(rawValue: String(name[name.index(after: dot)...])) else {
            return nil
        }
        let stem = name[..<dot]
        guard let attemptDot = stem.lastIndex(of: "."), attemptDot > stem.startIndex,
              let attempt = Int(stem[stem.index(after: attemptDot)...]), attempt > 0 else { return nil }
        self.init(stepID: String(stem[..<attemptDot]), attempt: attempt, stream: stream)
    }

    /// The run's `logs` folder, relative to the state folder.
    public static func folder(runID: String) -> String { "runs/\(runID)/logs" }

    /// The file, relative to the state folder: `runs/<run_id>/logs/build.3.out`.
    public func relativePath(runID: String) -> String { "\(Self.folder(runID: runID))/\(fileName)" }
}

extension AttemptLog {
    /// The last `maxBytes` bytes of the log at `path` (one bounded read, whatever the log's
    /// size); empty when it is absent, not a regular file (a symbolic link is not followed) or
    /// empty.
    public static func tail(atPath path: String, maxBytes: Int) -> [UInt8] {
        FileTail.read(path: path, maxBytes: maxBytes)?.bytes ?? []
    }

    /// Removes the log at `path` if it is an empty regular file: a log exists only for a stream
    /// the attempt wrote to ("no file = no output"), and a cluster's job opens both of its logs
    /// when it starts. Call it once the attempt's processes are gone.
    public static func removeIfEmpty(atPath path: String) {
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size == 0 { unlink(path) }
    }
}

extension StateDirectory {
    /// The absolute path of an attempt's log (see ``AttemptLog``).
    public func path(of log: AttemptLog, runID: String) -> String { "\(path)/\(log.relativePath(runID: runID))" }

    /// The absolute path of a run's `logs` folder.
    public func logsFolder(runID: String) -> String { "\(path)/\(AttemptLog.folder(runID: runID))" }
}
