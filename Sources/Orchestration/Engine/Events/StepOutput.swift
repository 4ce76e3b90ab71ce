/// One output a step wrote to `$OMNIBASE_OUTPUT` (SPEC section 11), as its success records it.
public struct StepOutput: Sendable, Hashable {
    /// The name, `[A-Za-z_][A-Za-z0-9_]*`.
    public var name: String
    /// The value, verbatim (``SecretMask/replacement`` in one read back from the events of a
    /// secret output).
    public var value: String
    /// Whether the name looks secret (``SecretMask/isSecretName(_:)``, or listed in
    /// `globals.secrets`): the value never reaches `events.jsonl`, the `events` table, reports or
    /// pages, only ``SecretMask/replacement`` does.
    public var isSecret: Bool

    /// Creates an output.
    public init(name: String, value: String, isSecret: Bool) {
        self.name = name
        self.value = value
        self.isSecret = isSecret
    }

    /// An output named `name`, secret when the name is by the word rule.
    public init(name: String, value: String) {
        self.init(name: name, value: value, isSecret: SecretMask.isSecretName(name))
    }

    /// The value as events, reports and pages show it: ``SecretMask/replacement`` when secret.
    public var shownValue: String { isSecret ? SecretMask.replacement : value }

    /// The output as events, reports and pages hold it (its value masked when secret).
    public var shown: StepOutput { StepOutput(name: name, value: shownValue, isSecret: isSecret) }
}
