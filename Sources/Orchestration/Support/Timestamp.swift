import Foundation

/// RFC 3339 UTC timestamps with milliseconds (`2026-11-21T10:00:00.000Z`).
public enum Timestamp {
    /// The whole milliseconds since 1970 a formatted date shows (rounded down).
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// The seconds between two dates as their formatted forms show them: what a report printed
    /// at the end of a run and the same report read back from the store agree on.
    public static func interval(from start: Date, to end: Date) -> Double {
        Double(milliseconds(end) - milliseconds(start)) / 1000
    }

    /// Formats a date.
    public static func rfc3339(_ date: Date) -> String {
        let totalMillis = milliseconds(date)
        var seconds = totalMillis / 1000
        var millis = totalMillis % 1000
        if millis < 0 { millis += 1000; seconds -= 1 }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        // Written straight into the string's storage: one allocation, not a buffer and a copy.
        return String(unsafeUninitializedCapacity: 24) { bytes in
            func put(_ value: Int, _ at: Int, _ width: Int) {
                var value = value
                for i in stride(from: at + width - 1, through: at, by: -1) {
                    bytes[i] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(Int(parts.tm_year) + 1900, 0, 4); bytes[4] = UInt8(ascii: "-")
            put(Int(parts.tm_mon) + 1, 5, 2); bytes[7] = UInt8(ascii: "-")
            put(Int(parts.tm_mday), 8, 2); bytes[10] = UInt8(ascii: "T")
            put(Int(parts.tm_hour), 11, 2); bytes[13] = UInt8(ascii: ":")
            put(Int(parts.tm_min), 14, 2); bytes[16] = UInt8(ascii: ":")
            put(Int(parts.tm_sec), 17, 2); bytes[19] = UInt8(ascii: ".")
            put(Int(millis), 20, 3); bytes[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// Parses what ``rfc3339(_:)`` writes (and whole seconds without a fraction).
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for i in range {
                guard bytes[i] >= 0x30, bytes[i] <= 0x39 else { return nil }
                value = value * 10 + Int(bytes[i] - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19) else { return nil }
        var millis = 0
        if bytes.count == 24, bytes[19] == UInt8(ascii: "."), let m = number(20..<23) { millis = m }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(seconds) + Double(millis) / 1000)
    }
}
