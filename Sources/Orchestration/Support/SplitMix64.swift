/// A small seedable random number generator (SplitMix64), so random DAGs in tests and benchmarks
/// are reproducible from their seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator; equal seeds give equal sequences.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed for a run id (FNV-1a 64 over its UTF-8 bytes: stable across processes and
    /// platforms, unlike `Hasher`), for the run's `retry_jitter` draws.
    public static func seed(runID: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in runID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// A draw from `[0, 1]` (53 bits of precision).
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) / Double((UInt64(1) << 53) - 1)
    }
}
