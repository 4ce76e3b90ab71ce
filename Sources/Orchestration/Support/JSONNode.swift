/// A position in JSON source text: 1-based line and column, 0-based byte offset.
///
/// Lines are separated by `\n` (so `\r\n` counts as one line break). The column counts **bytes**
/// from the start of the line, so a non-ASCII character before the position moves the column by
/// its UTF-8 length.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    /// The 1-based line number.
    public var line: Int
    /// The 1-based column, counted in bytes from the start of the line.
    public var column: Int
    /// The 0-based byte offset from the start of the input.
    public var offset: Int

    /// Creates a location from its line, column and byte offset.
    public init(line: Int, column: Int, offset: Int) {
        self.line = line
        self.column = column
        self.offset = offset
    }

    /// The first byte of the input: line 1, column 1, offset 0.
    public static let start = SourceLocation(line: 1, column: 1, offset: 0)

    /// The location as `line:column`.
    public var description: String { "\(line):\(column)" }
}

/// A parsed JSON value together with the location where it starts in the source.
///
/// `StrictJSONParser` produces these so that plan validation can point at the offending token;
/// call ``toValue()`` to drop the locations.
public struct JSONNode: Sendable {
    /// The value itself; containers hold nodes, so every nested value keeps its location.
    public enum Kind: Sendable {
        /// `null`.
        case null
        /// `true` or `false`.
        case bool(Bool)
        /// A number, kept as its source text.
        case number(JSONNumber)
        /// A decoded string.
        case string(String)
        /// An array, elements in source order.
        case array([JSONNode])
        /// An object, members in source order.
        case object(JSONObject)
    }

    /// The value.
    public var kind: Kind
    /// Where the value's first byte is in the source.
    public var location: SourceLocation

    /// Creates a node from a value and the location of its first byte.
    public init(_ kind: Kind, at location: SourceLocation) {
        self.kind = kind
        self.location = location
    }

    /// The JSON type's name for error messages: `null`, `boolean`, `number`, `string`, `array` or `object`.
    public var typeName: String {
        switch kind {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Whether the value is `null`.
    public var isNull: Bool {
        if case .null = kind { true } else { false }
    }

    /// The boolean, or `nil` if the value is not a boolean.
    public var boolValue: Bool? {
        if case .bool(let value) = kind { value } else { nil }
    }

    /// The number, or `nil` if the value is not a number.
    public var numberValue: JSONNumber? {
        if case .number(let value) = kind { value } else { nil }
    }

    /// The string, or `nil` if the value is not a string.
    public var stringValue: String? {
        if case .string(let value) = kind { value } else { nil }
    }

    /// The elements, or `nil` if the value is not an array.
    public var arrayValue: [JSONNode]? {
        if case .array(let value) = kind { value } else { nil }
    }

    /// The object, or `nil` if the value is not an object.
    public var objectValue: JSONObject? {
        if case .object(let value) = kind { value } else { nil }
    }

    /// The same value without source locations.
    ///
    /// Numbers become ``JSONValue/int(_:)`` when ``JSONNumber/int`` is exact, otherwise
    /// ``JSONValue/double(_:)``. Object members keep their source order.
    public func toValue() -> JSONValue {
        switch kind {
        case .null: .null
        case .bool(let value): .bool(value)
        case .number(let number): number.int.map(JSONValue.int) ?? .double(number.double)
        case .string(let value): .string(value)
        case .array(let elements): .array(elements.map { $0.toValue() })
        case .object(let object): .object(object.members.map { JSONValue.Member($0.key, $0.value.toValue()) })
        }
    }
}

/// The members of a JSON object, in source order.
///
/// The parser rejects duplicate keys (compared as Swift strings), so in parsed objects every key
/// appears once.
public struct JSONObject: Sendable {
    /// One `"key": value` pair with the location of its key.
    public struct Member: Sendable {
        /// The decoded key.
        public var key: String
        /// Where the key's opening quote is in the source.
        public var keyLocation: SourceLocation
        /// The member's value.
        public var value: JSONNode

        /// Creates a member.
        public init(key: String, keyLocation: SourceLocation, value: JSONNode) {
            self.key = key
            self.keyLocation = keyLocation
            self.value = value
        }
    }

    /// The members, in source order.
    public var members: [Member]

    /// Creates an object from members in order.
    public init(members: [Member] = []) {
        self.members = members
    }

    /// The value of the first member named `key`, or `nil` if there is none.
    ///
    /// Lookup is a linear scan, which is the fast choice for the small objects of a plan; iterate
    /// ``members`` to visit every member of a large object.
    public subscript(key: String) -> JSONNode? {
        member(named: key)?.value
    }

    /// The first member named `key`, with its key's location, or `nil` if there is none.
    public func member(named key: String) -> Member? {
        members.first { $0.key == key }
    }

    /// The keys, in source order.
    public var keys: [String] { members.map(\.key) }

    /// The number of members.
    public var count: Int { members.count }

    /// Whether the object has no members.
    public var isEmpty: Bool { members.isEmpty }
}

/// A JSON number kept as its source text, with exact accessors.
///
/// Keeping the text means an integer such as `9007199254740993` is not rounded through `Double`,
/// and a validator can tell `3` from `3.0`.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The number exactly as written in the source, e.g. `-12`, `0.5`, `1e3`.
    public var text: String

    /// Creates a number from its JSON text; the text is not validated.
    public init(text: String) {
        self.text = text
    }

    /// The exact integer, or `nil` if the literal has a fraction or an exponent or does not fit in `Int`.
    ///
    /// `3` gives 3; `3.0`, `3e0` and `9223372036854775808` give `nil`.
    public var int: Int? {
        guard !isFractionOrExponent else { return nil }
        return Int(text)
    }

    /// The value as a `Double`, rounded to the nearest representable value.
    ///
    /// The parser rejects numbers whose value overflows to infinity, so for parsed numbers this
    /// is finite. Values too small to represent become 0; text that is not a number gives NaN.
    public var double: Double {
        Double(text) ?? .nan
    }

    /// Whether the literal has a fraction (`.`) or an exponent (`e`/`E`).
    public var isFractionOrExponent: Bool {
        text.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
    }

    /// The source text.
    public var description: String { text }
}
