/// `retry_on`: which failed attempts are worth another attempt (SPEC §11).
///
/// A failed attempt is retried when its exit code is in ``exitCodes``, when one of
/// ``stderrMatches`` is a substring of the last ``stderrWindow`` bytes of its stderr log, or when
/// it timed out and ``timeout`` is true. Any other failure is final at once, whatever retries
/// are left, and the step's error says why (``refusal(for:stderrTail:)``).
public struct RetryCondition: Sendable, Hashable {
    /// `exit_codes`: exit codes that are retried.
    public var exitCodes: [Int32]
    /// `stderr_matches`: substrings (bytes, case-sensitive) of the stderr tail that are retried.
    public var stderrMatches: [String]
    /// `timeout`: whether an attempt that exceeded its timeout is retried.
    public var timeout: Bool

    /// How much of the end of an attempt's stderr log ``stderrMatches`` look at: 64 KiB.
    public static let stderrWindow = 64 * 1024

    /// Creates a condition.
    public init(exitCodes: [Int32] = [], stderrMatches: [String] = [], timeout: Bool = false) {
        self.exitCodes = exitCodes
        self.stderrMatches = stderrMatches
        self.timeout = timeout
    }

    /// Why a failed attempt is not retried, or nil when it matches.
    /// - Parameters:
    ///   - outcome: the failed attempt.
    ///   - stderrTail: the last ``stderrWindow`` bytes of its stderr (read only when
    ///     ``stderrMatches`` is not empty and nothing else matched).
    /// - Returns: one clause for the step's error: `not retried: exit code 3 is not in
    ///   retry_on.exit_codes`.
    public func refusal(for outcome: AttemptOutcome, stderrTail: () -> [UInt8]) -> String? {
        if let code = outcome.exitCode, exitCodes.contains(code) { return nil }
        if outcome.timedOut && timeout { return nil }
        if !stderrMatches.isEmpty {
            let tail = stderrTail()
            if stderrMatches.contains(where: { Self.bytes(tail, contain: Array($0.utf8)) }) { return nil }
        }
        var clauses: [String] = []
        if outcome.timedOut {
            clauses.append("it timed out and retry_on.timeout is not true")
        } else if !exitCodes.isEmpty {
            if let code = outcome.exitCode {
                clauses.append("exit code \(code) is not in retry_on.exit_codes")
            } else if let signal = outcome.signal {
                clauses.append("it was killed by signal \(signal), so no exit code matched retry_on.exit_codes")
            } else {
                clauses.append("it has no exit code for retry_on.exit_codes")
            }
        } else if let code = outcome.exitCode {
            clauses.append("exit code \(code) is not retried (retry_on has no exit_codes)")
        }
        if !stderrMatches.isEmpty {
            clauses.append("no retry_on.stderr_matches entry is in the last 64 KiB of its stderr")
        }
        if clauses.isEmpty { clauses.append("the failure matches no retry_on rule") }
        return "not retried: " + clauses.joined(separator: "; ")
    }

    /// Whether `needle` occurs in `haystack` (an empty needle always does).
    static func bytes(_ haystack: [UInt8], contain needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < needle.count && haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return true }
            }
            i += 1
        }
        return false
    }
}
