/// A 16-bit check of a secret `--var` value whose value is not stored, so that the value given
/// again (`resume`, `replay`, `report --var`) can be told wrong: a mistyped value would run the
/// steps with it and, in a report, mask the wrong text and show the real secret in the log
/// tails.
///
/// The check is salted and short on purpose: a wrong value is caught 65,535 times in 65,536,
/// and the stored check confirms no guess (about one in 65,536 of all wrong values match it).
/// Stored as `1:<salt, 16 hex digits>:<check, 4 hex digits>`.
enum SecretCheck {
    /// A new check of `value`, with a random salt.
    static func make(_ value: String) -> String {
        let salt = UInt64.random(in: 0...UInt64.max)
        return "1:\(hex(salt, digits: 16)):\(hex(UInt64(check(value, salt: salt)), digits: 4))"
    }

    /// Whether `value` passes the stored check; nil when the check cannot be read (a later
    /// format), which then checks nothing.
    static func matches(_ stored: String, value: String) -> Bool? {
        let parts = stored.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "1", let salt = UInt64(parts[1], radix: 16),
              let expected = UInt16(parts[2], radix: 16) else { return nil }
        return check(value, salt: salt) == expected
    }

    /// FNV-1a (64 bits) over the salt's bytes and the value's UTF-8, folded to 16 bits.
    private static func check(_ value: String, salt: UInt64) -> UInt16 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        for shift in stride(from: 0, to: 64, by: 8) { mix(UInt8(truncatingIfNeeded: salt >> UInt64(shift))) }
        for byte in value.utf8 { mix(byte) }
        return UInt16(truncatingIfNeeded: hash ^ (hash >> 16) ^ (hash >> 32) ^ (hash >> 48))
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
