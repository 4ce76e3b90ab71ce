/// How a step's failed attempts are retried (SPEC §2).
///
/// A step gets `1 + retries` attempts. Before retry `k` (k = 1, 2, ...) it waits:
///
/// | backoff | delay before retry k |
/// | --- | --- |
/// | `fixed` | `delay` |
/// | `exponential` | `min(maxDelay, delay * 2^(k-1))` |
///
/// With ``jitter`` (`retry_jitter`), the wait is drawn uniformly from `[0, that delay]` ("full
/// jitter") by the run's own generator (``SplitMix64``, seeded from the run id). With
/// ``retryOn`` (`retry_on`), only the failures it matches are retried.
public struct RetryPolicy: Sendable, Hashable {
    /// The growth of the delay between attempts.
    public enum Backoff: String, Sendable, Hashable, CaseIterable {
        /// The same delay before every retry.
        case fixed
        /// The delay doubles before every retry, capped at `maxDelay`.
        case exponential
    }

    /// Retries after the first attempt (0 = one attempt only).
    public var retries: Int
    /// `retry_delay_sec`: the base delay.
    public var delay: Duration
    /// `retry_backoff`.
    public var backoff: Backoff
    /// `max_retry_delay_sec`: the cap of exponential delays.
    public var maxDelay: Duration
    /// `retry_on`: which failures are retried; nil = every failure.
    public var retryOn: RetryCondition?
    /// `retry_jitter`: spread each delay uniformly over `[0, delay]`.
    public var jitter: Bool

    /// Creates a policy; the defaults are SPEC §1's.
    public init(retries: Int = 0, delay: Duration = .zero, backoff: Backoff = .exponential,
                maxDelay: Duration = .seconds(300), retryOn: RetryCondition? = nil, jitter: Bool = false) {
        self.retries = retries
        self.delay = delay
        self.backoff = backoff
        self.maxDelay = maxDelay
        self.retryOn = retryOn
        self.jitter = jitter
    }

    /// Every attempt a step may make.
    public var maxAttempts: Int { retries + 1 }

    /// The wait before retry `k` (1-based: the wait between attempt k and attempt k + 1).
    public func delay(beforeRetry k: Int) -> Duration {
        precondition(k >= 1, "retries are numbered from 1")
        switch backoff {
        case .fixed:
            return delay
        case .exponential:
            // 2^(k-1) overflows quickly; past 2^62 every real delay has reached the cap anyway.
            let exponent = min(k - 1, 62)
            let scaled = delay * Double(1 << exponent)
            return min(maxDelay, scaled)
        }
    }

    /// The wait before retry `k` with full jitter: ``delay(beforeRetry:)`` scaled by `unit`.
    /// - Parameter unit: a draw from `[0, 1]`.
    public func jitteredDelay(beforeRetry k: Int, unit: Double) -> Duration {
        precondition(unit >= 0 && unit <= 1, "a jitter draw is in [0, 1]")
        return delay(beforeRetry: k) * unit
    }
}
