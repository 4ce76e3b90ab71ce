import Orchestration
import Synchronization

/// The secret values of the plans this invocation works on: everything the CLI prints (reports,
/// dry-run argv, error messages) goes through it, so a secret never reaches a terminal or a CI
/// log (SPEC section 10).
///
/// Commands add a plan's mask as soon as they have loaded it; printing reads it synchronously.
final class PrintMask: Sendable {
    /// The one mask of this process.
    static let shared = PrintMask()

    private let mask = Mutex(SecretMask(values: []))

    /// Adds `more` to what is masked.
    func add(_ more: SecretMask) {
        guard !more.isEmpty else { return }
        mask.withLock { $0 = $0.merging(more) }
    }

    /// Adds the values of a run's secret outputs (names secret by the word rule, or for `plan`'s
    /// `globals.secrets`), so that log tails and reports printed later mask them too.
    func addSecretOutputs(of runID: String, store: RunStore, plan: Plan?) {
        guard let outputs = try? store.outputs(runID) else { return }
        add(SecretMask(values: outputs.values(named: { plan?.isSecret($0) ?? SecretMask.isSecretName($0) })))
    }

    /// Every secret value known so far.
    var current: SecretMask { mask.withLock { $0 } }

    /// `text` with every known secret value masked.
    func apply(_ text: String) -> String {
        mask.withLock { $0 }.apply(text)
    }

    /// `value` with every known secret value masked in its strings.
    func apply(_ value: JSONValue) -> JSONValue {
        mask.withLock { $0 }.apply(value)
    }
}
