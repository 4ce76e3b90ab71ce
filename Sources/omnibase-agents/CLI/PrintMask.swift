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
