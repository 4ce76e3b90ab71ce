import Foundation

/// Replaces secret values with `***` in what the engine writes for people (SPEC section 10).
///
/// ## Which names are secret
/// A name is secret when one of its words is `PASSWORD`, `TOKEN`, `SECRET`, `KEY`,
/// `CREDENTIAL`, `AUTH` or `PRIVATE`, or one of those followed by `S` (`KEYS`,
/// `CREDENTIALS`), case-insensitively, where words are what lies between `_`, `-` and `.`:
/// `DB_PASSWORD`, `api-key`, `GITHUB_TOKEN`, `AWS_SECRET_ACCESS_KEY` and also `NOT_SECRET`
/// are secret (a word rule cannot read intent: masking a value too many is the safe mistake);
/// `KEYBOARD`, `MONKEY`, `AUTHOR` and `TOKENIZER` are not. A plan adds names with
/// `globals.secrets`.
///
/// ## Which values are masked
/// The values of the plan's variables (including `--var` ones) and environment entries
/// (`globals.env`, a step's `env`) whose names are secret, and the engine environment's values
/// of names listed in `globals.secrets`. Every occurrence of each value is replaced, longest
/// value first. Values shorter than ``minimumLength`` characters are not masked: masking every
/// `1` or `on` would make output unreadable while hiding nothing worth hiding.
public struct SecretMask: Sendable, Hashable {
    /// What a secret value becomes.
    public static let replacement = "***"
    /// The shortest value that is masked, in characters.
    public static let minimumLength = 3
    /// The words that make a name secret.
    public static let words: Set<String> = ["PASSWORD", "TOKEN", "SECRET", "KEY", "CREDENTIAL", "AUTH", "PRIVATE"]

    /// The values to mask as UTF-8, longest first, without repeats.
    private let values: [[UInt8]]

    /// A mask of `values` (empty and too short ones are dropped).
    public init(values: some Sequence<String>) {
        let kept = Set(values.filter { $0.count >= Self.minimumLength })
        self.values = kept.map { Array($0.utf8) }.sorted {
            $0.count != $1.count ? $0.count > $1.count : $0.lexicographicallyPrecedes($1)
        }
    }

    /// A mask of this one's values and `other`'s.
    public func merging(_ other: SecretMask) -> SecretMask {
        SecretMask(values: (values + other.values).map { String(decoding: $0, as: UTF8.self) })
    }

    /// Whether the mask has nothing to hide.
    public var isEmpty: Bool { values.isEmpty }

    /// The length of the longest value in UTF-8 bytes (0 for an empty mask): a reader of the end
    /// of a log that reads this many bytes more than it shows, masks, then cuts, never shows the
    /// rest of a value that began before what it shows.
    package var longestValueBytes: Int { values.first?.count ?? 0 }

    /// Whether a variable or environment name looks secret by the word rule.
    public static func isSecretName(_ name: String) -> Bool {
        nameWords(name).contains { word in
            words.contains(word) || (word.hasSuffix("S") && words.contains(String(word.dropLast())))
        }
    }

    /// A name's words, upper-cased: split on `_`, `-` and `.`, and where camel case starts a
    /// word (`githubToken`: GITHUB, TOKEN; `APIKey`: API, KEY). `TOKENIZER` and `Keyboard` stay
    /// one word each.
    static func nameWords(_ name: String) -> [String] {
        var result: [String] = []
        for part in name.split(whereSeparator: { $0 == "_" || $0 == "-" || $0 == "." }) {
            let characters = Array(part)
            var start = 0
            for index in characters.indices.dropFirst() {
                let previous = characters[index - 1], current = characters[index]
                let next = index + 1 < characters.count ? characters[index + 1] : nil
                // aB starts a word at B; ABc starts one at B (the end of an upper-case run).
                if (previous.isLowercase && current.isUppercase)
                    || (previous.isUppercase && current.isUppercase && next?.isLowercase == true) {
                    result.append(String(characters[start..<index]).uppercased())
                    start = index
                }
            }
            result.append(String(characters[start...]).uppercased())
        }
        return result
    }

    /// Whether any of the values occurs in `text`.
    package func occurs(in text: String) -> Bool {
        guard !values.isEmpty else { return false }
        let bytes = Array(text.utf8)
        return values.contains { value in
            bytes.count >= value.count && (0...(bytes.count - value.count)).contains { start in
                bytes[start..<(start + value.count)].elementsEqual(value)
            }
        }
    }

    /// `bytes` with every occurrence of every value replaced by ``replacement``.
    public func apply(_ bytes: [UInt8]) -> [UInt8] {
        guard !values.isEmpty, !bytes.isEmpty else { return bytes }
        var firsts = [Bool](repeating: false, count: 256)
        for value in values { firsts[Int(value[0])] = true }
        let replacement = Array(Self.replacement.utf8)
        var out: [UInt8] = []
        var changed = false
        var index = 0
        var copied = 0
        bytes.withUnsafeBufferPointer { buffer in
            while index < buffer.count {
                guard firsts[Int(buffer[index])],
                      let match = values.first(where: { value in
                          value.count <= buffer.count - index && value.withUnsafeBufferPointer {
                              memcmp($0.baseAddress!, buffer.baseAddress! + index, value.count) == 0
                          }
                      }) else {
                    index += 1
                    continue
                }
                if !changed {
                    out.reserveCapacity(buffer.count)
                    changed = true
                }
                out.append(contentsOf: buffer[copied..<index])
                out.append(contentsOf: replacement)
                index += match.count
                copied = index
            }
            if changed { out.append(contentsOf: buffer[copied...]) }
        }
        return changed ? out : bytes
    }

    /// `text` with every secret value replaced by ``replacement``.
    public func apply(_ text: String) -> String {
        guard !values.isEmpty else { return text }
        return String(decoding: apply(Array(text.utf8)), as: UTF8.self)
    }

    /// `value` with every string in it (at any depth) masked; keys are left alone.
    public func apply(_ value: JSONValue) -> JSONValue {
        guard !values.isEmpty else { return value }
        switch value {
        case .string(let text): return .string(apply(text))
        case .array(let items): return .array(items.map(apply))
        case .object(let members): return .object(members.map { .init($0.key, apply($0.value)) })
        default: return value
        }
    }
}

extension Plan {
    /// Whether a variable or environment entry of this plan is secret: by the word rule
    /// (``SecretMask/isSecretName(_:)``) or listed in `globals.secrets`.
    public func isSecret(_ name: String) -> Bool {
        secretNames.contains(name) || SecretMask.isSecretName(name)
    }

    /// The mask of this plan's secret values (see ``SecretMask``).
    /// - Parameter environment: the engine's environment, for the names of `globals.secrets`
    ///   that the plan does not define itself.
    public func secretMask(environment: [String: String] = ProcessInfo.processInfo.environment) -> SecretMask {
        var values: [String] = variables.compactMap { isSecret($0.key) ? $0.value : nil }
        for step in steps {
            guard let command = step.processCommand else { continue }
            for (name, value) in command.environment where isSecret(name) { values.append(value) }
        }
        for name in secretNames where variables[name] == nil {
            if let value = environment[name] { values.append(value) }
        }
        return SecretMask(values: values)
    }
}
