import Foundation
import Glibc
import Orchestration

/// The circuit breakers of every component, kept in the state folder across invocations:
/// `breakers.json`, replaced atomically (``StateDirectory/writeFileAtomically(_:_:)``) under the
/// cross-process lock `breakers.json.lock`, so concurrent stages never lose an update.
///
/// ```json
/// { "version": 1,
///   "components": { "lint": { "consecutive_failures": 3, "opened_at": "2026-11-21T10:00:00.000Z",
///                             "last_error": "exited with code 1", "last_run_id": "r-20261121-8f3a2c",
///                             "trial": { "pid": 4242, "start_time": 981234, "boot_id": "...",
///                                        "run_id": "r-20261121-9b0c1d", "claimed_at": "..." } } } }
/// ```
///
/// `trial` (optional) is the claim on a half-open circuit's one trial (``CircuitBreaker/TrialClaim``).
/// The file is separate from `runs.db`, whose schema belongs to the run store. A file of another
/// `version` was written by another release of omnibase-agents: it is refused (exit 4), never
/// rewritten.
public struct BreakerStore: Sendable {
    /// The file name in the state folder.
    public static let fileName = "breakers.json"
    /// The state folder.
    public let stateDirectory: StateDirectory

    /// Creates a store over a state folder.
    public init(stateDirectory: StateDirectory) {
        self.stateDirectory = stateDirectory
    }

    /// The version of `breakers.json` this release reads and writes.
    public static let version = 1

    /// Every recorded breaker by component name; components never recorded are closed.
    /// - Throws: ``EngineError``: exit 5 when the file is a symbolic link, 4 when another
    ///   release wrote it (another `version`), 74 when it cannot be read or is corrupt.
    public func load() throws(EngineError) -> [String: CircuitBreaker] {
        let path = stateDirectory.path + "/" + Self.fileName
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let number = errno
            if number == ENOENT { return [:] }
            if number == ELOOP {
                throw EngineError(.securityViolation, "\(path) is a symbolic link; refusing to read it")
            }
            throw EngineError(.stateFailure, "cannot read \(path): \(String(cString: strerror(number)))")
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let data: Data
        do { data = try handle.readToEnd() ?? Data() } catch {
            throw EngineError(.stateFailure, "cannot read \(path): \(error.localizedDescription)")
        }
        return try Self.decode([UInt8](data), path: path)
    }

    /// Reads the breakers, lets `body` change them, and writes them back atomically when it
    /// changed them, all under the lock: what `body` decides from the breakers (a trial's
    /// claim, say) holds against every concurrent invocation.
    /// - Returns: what `body` returns.
    /// - Throws: ``EngineError`` as ``load()``, or when the lock or the write fails.
    @discardableResult
    public func update<Result>(_ body: (inout [String: CircuitBreaker]) -> Result) throws(EngineError) -> Result {
        do {
            let lock = try FileLock(path: stateDirectory.path + "/" + Self.fileName + ".lock")
            return try lock.withLock(timeout: .seconds(10)) {
                let before = try load()
                var breakers = before
                let result = body(&breakers)
                if breakers != before {
                    try stateDirectory.writeFileAtomically(Self.fileName, Array(Self.encode(breakers).utf8))
                }
                return result
            }
        } catch {
            throw EngineError(error)
        }
    }

    static func encode(_ breakers: [String: CircuitBreaker]) -> String {
        let members = breakers.sorted { $0.key < $1.key }.map { name, breaker in
            var fields: [JSONValue.Member] = [
                .init("consecutive_failures", .int(breaker.consecutiveFailures)),
                .init("opened_at", breaker.openedAt.map { .string(Timestamp.rfc3339($0)) } ?? .null),
                .init("last_error", breaker.lastError.map { .string($0) } ?? .null),
                .init("last_run_id", breaker.lastRunID.map { .string($0) } ?? .null),
            ]
            if let trial = breaker.trial {
                fields.append(.init("trial", .object([
                    "pid": .int(Int(trial.holder.pid)), "start_time": .int(Int(trial.holder.startTime)),
                    "boot_id": .string(trial.holder.bootID), "run_id": .string(trial.runID),
                    "claimed_at": .string(Timestamp.rfc3339(trial.claimedAt)),
                ])))
            }
            return JSONValue.Member(name, .object(fields))
        }
        return JSONValue.object(["version": .int(version), "components": .object(members)]).serialized(pretty: true) + "\n"
    }

    static func decode(_ bytes: [UInt8], path: String) throws(EngineError) -> [String: CircuitBreaker] {
        func corrupt(_ why: String) -> EngineError {
            EngineError(.stateFailure, "\(path) is corrupt (\(why)); delete it to reset every circuit breaker")
        }
        let root: JSONValue
        do { root = try StrictJSONParser.parse(bytes).toValue() } catch { throw corrupt(error.description) }
        if let found = root["version"]?.intValue, found != version {
            // Another release's file: its breakers are not ours to reset, or to misread.
            let what = found > version ? "written by a newer release of omnibase-agents" : "of a format this release does not know"
            throw EngineError(.protocolViolation, "\(path) is version \(found) of the breakers file, \(what) (this one reads "
                              + "version \(version)); use the release that wrote it with this state folder")
        }
        guard root["version"]?.intValue == version, let members = root["components"]?.objectValue else {
            throw corrupt("expected {\"version\": 1, \"components\": {...}}")
        }
        var breakers: [String: CircuitBreaker] = [:]
        for member in members {
            let value = member.value
            guard let failures = value["consecutive_failures"]?.intValue, failures >= 0 else {
                throw corrupt("\(member.key): consecutive_failures must be a count")
            }
            var openedAt: Date?
            if let text = value["opened_at"]?.stringValue {
                guard let date = Timestamp.parse(text) else { throw corrupt("\(member.key): opened_at is not a timestamp") }
                openedAt = date
            }
            var trial: CircuitBreaker.TrialClaim?
            if let claim = value["trial"], claim != .null {
                guard let pid = claim["pid"]?.intValue, let pid32 = Int32(exactly: pid),
                      let startTime = claim["start_time"]?.intValue, let bootID = claim["boot_id"]?.stringValue,
                      let runID = claim["run_id"]?.stringValue,
                      let claimedAt = claim["claimed_at"]?.stringValue.flatMap(Timestamp.parse) else {
                    throw corrupt("\(member.key): trial must be {\"pid\", \"start_time\", \"boot_id\", \"run_id\", \"claimed_at\"}")
                }
                trial = .init(holder: EngineIdentity(pid: pid32, startTime: Int64(startTime), bootID: bootID), runID: runID,
                              claimedAt: claimedAt)
            }
            breakers[member.key] = CircuitBreaker(consecutiveFailures: failures, openedAt: openedAt,
                                                  lastError: value["last_error"]?.stringValue,
                                                  lastRunID: value["last_run_id"]?.stringValue, trial: trial)
        }
        return breakers
    }
}
