/// The outputs of a run's succeeded steps, by step id and name: what `${steps.ID.outputs.NAME}`
/// reads when an attempt starts (SPEC section 11).
///
/// The executor fills it as steps succeed (a step's outputs are those of its succeeded attempt)
/// and, on `resume`, starts from the outputs that the steps which succeeded in earlier sessions
/// left in the store (``RunStore/outputs(_:)``). Values are held verbatim, secret ones too: this
/// table is for the steps, never for display.
///
/// ```swift
/// var outputs = StepOutputs()
/// outputs.set([StepOutput(name: "version", value: "1.2.0")], of: "build")
/// outputs.value(step: "build", name: "version")   // "1.2.0"
/// ```
public struct StepOutputs: Sendable, Hashable {
    private var byStep: [String: [String: String]]

    /// Creates a table from values by step id, then name.
    public init(_ byStep: [String: [String: String]] = [:]) {
        self.byStep = byStep
    }

    /// The value of output `name` of step `step`, or nil when that step did not succeed (yet) or
    /// did not write it.
    public func value(step: String, name: String) -> String? { byStep[step]?[name] }

    /// Every output of step `step`, by name (empty when it has none or did not succeed).
    public func outputs(of step: String) -> [String: String] { byStep[step] ?? [:] }

    /// Whether no step has an output.
    public var isEmpty: Bool { byStep.values.allSatisfy(\.isEmpty) }

    /// The values of the outputs whose names satisfy `isSecret` (for a ``SecretMask``).
    public func values(named isSecret: (String) -> Bool) -> [String] {
        byStep.values.flatMap { outputs in outputs.filter { isSecret($0.key) }.map(\.value) }
    }

    /// Sets the outputs of `step` (replacing any it had).
    public mutating func set(_ outputs: [StepOutput], of step: String) {
        var values: [String: String] = [:]
        for output in outputs { values[output.name] = output.value }
        byStep[step] = values.isEmpty ? nil : values
    }
}
