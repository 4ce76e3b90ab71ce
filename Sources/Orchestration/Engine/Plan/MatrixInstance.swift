/// Where an expanded step came from: the matrix step it is one combination of, and that
/// combination's values.
///
/// A plan step with a `"matrix"` is expanded at load into one ``Step`` per combination, each with
/// an id `ID.VALUE1.VALUE2...` and this record, so that `graph`, the reports and the profile can
/// group the expansions under the step that was written.
public struct MatrixInstance: Sendable, Hashable {
    /// One `KEY: value` pair of a combination.
    public struct Value: Sendable, Hashable {
        /// The matrix key.
        public var key: String
        /// The value as `${matrix.KEY}` inserts it (a number or boolean as its JSON text).
        public var value: String

        /// Creates a pair.
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// The id of the matrix step as written in the plan (the group's id).
    public var step: String
    /// The combination's values: the matrix's own keys in the order written, then keys that
    /// `include` added, in the order they first appear there.
    public var values: [Value]

    /// Creates an instance.
    public init(step: String, values: [Value]) {
        self.step = step
        self.values = values
    }

    /// The value of `key` in this combination.
    public subscript(key: String) -> String? {
        values.first { $0.key == key }?.value
    }

    /// `os=linux, v=1`.
    public var summary: String {
        values.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }
}
