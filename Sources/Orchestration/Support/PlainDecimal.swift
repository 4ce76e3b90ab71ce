extension FixedWidthInteger {
    /// A whole number written the one plain way: decimal digits only, `0` or a first digit from
    /// 1 to 9 (no sign, no leading zero, no space, no `0x`), within the type's range.
    ///
    /// `Int("+80")` and `Int("0010")` are 80 and 10: where a number comes from a user or a client
    /// (a port, an event's `seq`), such spellings are refused rather than read as another one.
    /// - Parameter text: The number's text.
    package init?(plainDecimal text: some StringProtocol) {
        let digits = text.utf8
        guard let first = digits.first, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              first != UInt8(ascii: "0") || digits.count == 1,
              let value = Self(String(text), radix: 10) else { return nil }
        self = value
    }
}
