import Foundation

/// Run and trace identifiers.
public enum RunID {
    /// A new run id: `r-YYYYMMDD-` and 6 random hex digits, e.g. `r-20261121-8f3a2c`.
    public static func make(date: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let stamp = Timestamp.rfc3339(date).prefix(10).replacingOccurrences(of: "-", with: "")
        return "r-\(stamp)-\(hex(bytes: 3, using: &generator))"
    }

    /// A new 128-bit trace id (32 hex digits, W3C trace-context style).
    public static func traceID() -> String {
        var generator = SystemRandomNumberGenerator()
        return hex(bytes: 16, using: &generator)
    }

    private static func hex(bytes: Int, using generator: inout some RandomNumberGenerator) -> String {
        var text = ""
        for _ in 0..<bytes {
            let byte = UInt8.random(in: 0...255, using: &generator)
            text += String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }
        return text
    }
}
