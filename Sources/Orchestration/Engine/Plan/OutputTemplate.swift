import Foundation

/// A string of a step's `command`, `args`, `cwd` or `env` that uses other steps' outputs
/// (`${steps.ID.outputs.NAME}`, SPEC section 11): its variables are substituted when the plan
/// loads, its output references when an attempt starts.
///
/// The parts keep the two apart: text (variables already inserted, `$$` already a `$`) and
/// references. Resolving inserts each output's value verbatim, in one pass: a value that holds
/// `${...}`, `$`, quotes or newlines is never expanded again, and text that only looks like a
/// reference (a variable's value, `$${steps...}`) stays text.
///
/// ```swift
/// var referenced: Set<String> = []
/// let template = try OutputTemplate.parse("v=${steps.build.outputs.version}", variables: [:], referenced: &referenced)
/// template?.resolve { $0.step == "build" ? "1.2.0" : nil }   // .success("v=1.2.0")
/// ```
public struct OutputTemplate: Sendable, Hashable {
    /// `${steps.ID.outputs.NAME}`: the output `name` of step `step`.
    public struct Reference: Sendable, Hashable {
        /// The producing step's id.
        public var step: String
        /// The output's name, `[A-Za-z_][A-Za-z0-9_]*`.
        public var name: String

        /// Creates a reference.
        public init(step: String, name: String) {
            self.step = step
            self.name = name
        }

        /// The reference as a plan writes it.
        public var text: String { "${steps.\(step).outputs.\(name)}" }

        /// The reference written between `${` and `}` (`steps.build.outputs.version`; step ids may
        /// hold dots, output names may not), or nil when `inner` is not one.
        public init?(inner: Substring) {
            let prefix = "steps.", marker = ".outputs."
            guard inner.hasPrefix(prefix), let markerRange = inner.range(of: marker, options: .backwards) else { return nil }
            let step = inner[inner.index(inner.startIndex, offsetBy: prefix.count)..<markerRange.lowerBound]
            let name = inner[markerRange.upperBound...]
            guard Self.isValidStepID(step), VariableSubstitution.isValidName(String(name)) else { return nil }
            self.init(step: String(step), name: String(name))
        }

        /// `[A-Za-z0-9][A-Za-z0-9_.-]*`, the syntax of step ids.
        static func isValidStepID(_ id: Substring) -> Bool {
            func alphanumeric(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) }
            guard let first = id.utf8.first, alphanumeric(first) else { return false }
            return id.utf8.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        }
    }

    /// A piece of the string.
    public enum Part: Sendable, Hashable {
        /// Text, inserted as it is.
        case text(String)
        /// An output, inserted verbatim when the attempt starts.
        case output(Reference)
    }

    /// The pieces, in order.
    public var parts: [Part]

    /// Creates a template (library API; plan files get theirs from ``parse(_:variables:referenced:)``).
    public init(parts: [Part]) {
        self.parts = parts
    }

    /// The references, in order (repeats kept).
    public var references: [Reference] {
        parts.compactMap { if case .output(let reference) = $0 { return reference } else { return nil } }
    }

    /// The string as shown before the run (dry runs, `graph`): the references as written.
    public var placeholder: String {
        parts.map { part in
            switch part {
            case .text(let text): return text
            case .output(let reference): return reference.text
            }
        }.joined()
    }

    /// The string with every reference replaced by `value(reference)`.
    /// - Returns: the string, or the first reference that has no value.
    public func resolve(_ value: (Reference) -> String?) -> Result<String, MissingOutput> {
        var out = ""
        for part in parts {
            switch part {
            case .text(let text):
                out += text
            case .output(let reference):
                guard let found = value(reference) else { return .failure(MissingOutput(reference: reference)) }
                out += found
            }
        }
        return .success(out)
    }

    /// An output a step uses that its producer did not write.
    public struct MissingOutput: Error, Sendable, Hashable {
        /// The reference without a value.
        public var reference: Reference
    }

    /// Substitutes the variables of `text` (``VariableSubstitution``) and keeps its output
    /// references for the attempt's start.
    ///
    /// The scan follows ``VariableSubstitution``'s rules: `$$` is a literal `$` (so `$${steps...}`
    /// is text), every other `${...}` is a variable, unless it reads `${steps.ID.outputs.NAME}`.
    /// - Returns: nil when `text` has no output reference (use ``VariableSubstitution`` for it).
    /// - Throws: ``VariableSubstitution/Failure`` for an unknown or malformed variable, or a
    ///   `${steps....}` that is not `${steps.ID.outputs.NAME}` (malformed).
    public static func parse(_ text: String, variables: [String: String],
                             referenced: inout Set<String>) throws(VariableSubstitution.Failure) -> OutputTemplate? {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "$")) else { return nil }
        var parts: [Part] = []
        var chunkStart = 0
        var i = 0
        func flush(upTo end: Int) throws(VariableSubstitution.Failure) {
            guard end > chunkStart else { return }
            let chunk = String(decoding: bytes[chunkStart..<end], as: UTF8.self)
            parts.append(.text(try VariableSubstitution.substitute(chunk, variables: variables, referenced: &referenced)))
        }
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "$"), i + 1 < bytes.count else {
                i += 1
                continue
            }
            if bytes[i + 1] == UInt8(ascii: "$") {
                i += 2
            } else if bytes[i + 1] == UInt8(ascii: "{") {
                guard let close = bytes[(i + 2)...].firstIndex(of: UInt8(ascii: "}")) else { break }
                let inner = Substring(String(decoding: bytes[(i + 2)..<close], as: UTF8.self))
                if inner.hasPrefix("steps.") {
                    guard let reference = Reference(inner: inner) else { throw .malformedReference("${\(inner)}") }
                    try flush(upTo: i)
                    parts.append(.output(reference))
                    chunkStart = close + 1
                }
                i = close + 1
            } else {
                i += 1
            }
        }
        guard !parts.isEmpty else {
            // No reference: the caller substitutes the whole text (and reports its errors).
            return nil
        }
        try flush(upTo: bytes.count)
        // Adjacent texts merge, empty ones go: the parts are as few as the references need.
        var merged: [Part] = []
        for part in parts {
            if case .text(let text) = part {
                if text.isEmpty { continue }
                if case .text(let previous)? = merged.last {
                    merged[merged.count - 1] = .text(previous + text)
                    continue
                }
            }
            merged.append(part)
        }
        return OutputTemplate(parts: merged)
    }
}
