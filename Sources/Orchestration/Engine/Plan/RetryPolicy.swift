/// How a step's failed attempts are retried (SPEC §2).
///
/// A step gets `1 + retries` attempts. Before retry `k` (k = 1, 2, ...) it waits:
///
/// | backoff | delay before retry k |
/// | --- | --- |
/// | `fixed` | `delay` |
/// | `exponential` | `min(maxDelay, delay * 2^(k-1))` |
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

    /// Creates a policy; the defaults are SPEC §1's.
    public init(retries: Int = 0, delay: Duration = .zero, backoff: Backoff = .exponential,
                maxDelay: Duration = .seconds(300)) {
        self.retries = retries
        self.delay = delay
        self.backoff = backoff
        self.maxDelay = maxDelay
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
}
