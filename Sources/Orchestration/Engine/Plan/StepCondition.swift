import Foundation

/// A step's `"if"` (SPEC §11): a small, typed expression decided when the step's dependencies
/// have ended.
///
/// ```
/// expression := or
/// or         := and ( "||" and )*
/// and        := comparison ( "&&" comparison )*
/// comparison := unary ( ( "==" | "!=" ) unary )?
/// unary      := "!" unary | primary
/// primary    := "(" or ")" | 'string' | vars.NAME | steps.ID.status | steps.ID.outputs.NAME
///             | success() | failure() | always()
/// ```
///
/// - Strings are single-quoted; a quote inside one is written twice (`'it''s'`). There is no
///   other escape: everything between the quotes is the value.
/// - Two types: `==` and `!=` compare two strings and give a boolean; `&&`, `||` and `!` take
///   booleans; the whole expression is a boolean. A string where a boolean is needed (or the
///   reverse) is a load error, so `vars.DEPLOY` alone is refused: write `vars.DEPLOY == 'yes'`.
/// - `vars.NAME` is a plan variable (after `--var`), `steps.ID.status` is `succeeded`, `failed`,
///   `skipped` or `cancelled`, `steps.ID.outputs.NAME` is an output the step wrote, `''` when it
///   wrote none. `ID` must be one of the step's dependencies, direct or transitive.
/// - `success()`: every dependency lets the step run by SPEC §2 (succeeded, or failed with
///   `on_failure: "continue"`). `failure()`: some dependency, direct or transitive, failed.
///   `always()`: true. Without `failure()` or `always()` the step runs only when `success()`
///   holds, as every step does; with either, it is decided once all its dependencies (direct
///   and transitive) have ended or been cancelled, whatever they did.
///
/// Values are data: an expression is never run through a shell or expanded again, and it reads
/// nothing but the values above.
public struct StepCondition: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written.
    public let text: String
    /// Whether it calls `failure()` or `always()`: the step is then decided once its
    /// dependencies have ended, whatever their status, and is started even after a critical
    /// `abort`.
    public let awaitsAnyOutcome: Bool
    /// Every `vars.` and `steps.` reference, in order, with its column (for load checks).
    public let references: [Reference]
    let root: Node

    /// The longest expression, in characters.
    public static let maxLength = 4096
    /// The deepest nesting of parentheses and `!`.
    public static let maxDepth = 32

    /// A name the expression reads.
    public struct Reference: Sendable, Hashable {
        /// What it reads.
        public enum Kind: Sendable, Hashable {
            /// `vars.NAME`.
            case variable(String)
            /// `steps.ID.status`.
            case stepStatus(String)
            /// `steps.ID.outputs.NAME`.
            case stepOutput(step: String, name: String)
        }

        /// What it reads.
        public var kind: Kind
        /// Its 1-based column (in characters) in the expression.
        public var column: Int

        /// The step it reads from, if any.
        public var step: String? {
            switch kind {
            case .variable: return nil
            case .stepStatus(let id), .stepOutput(let id, _): return id
            }
        }
    }

    /// Why an expression was refused: a sentence and the 1-based column (in characters) it is about.
    public struct Problem: Error, Sendable, Hashable {
        /// What kind of mistake it is (an unknown variable has its own error code, as `${NAME}` does).
        public enum Kind: Sendable, Hashable {
            /// The expression itself: syntax, an unknown function or name, a type mismatch.
            case syntax
            /// `vars.NAME` names no variable.
            case unknownVariable
            /// `steps.ID...` names an unknown step, the step itself, or one that is not a dependency.
            case reference
        }
        /// The 1-based column in the expression.
        public var column: Int
        /// One sentence.
        public var message: String
        /// What kind of mistake it is.
        public var kind: Kind = .syntax
    }

    /// What ``evaluate(_:)`` reads.
    public struct Inputs {
        /// `success()`.
        public var success: Bool
        /// `failure()`.
        public var failure: Bool
        /// `vars.NAME`.
        public var variable: (String) -> String?
        /// `steps.ID.status` (a final status when the condition is decided).
        public var status: (String) -> StepStatus?
        /// `steps.ID.outputs.NAME`; nil (no such output) reads as `''`.
        public var output: (_ step: String, _ name: String) -> String?

        /// Creates the inputs of one evaluation.
        public init(success: Bool, failure: Bool, variable: @escaping (String) -> String?,
                    status: @escaping (String) -> StepStatus?,
                    output: @escaping (_ step: String, _ name: String) -> String?) {
            self.success = success
            self.failure = failure
            self.variable = variable
            self.status = status
            self.output = output
        }
    }

    indirect enum Node: Sendable, Hashable {
        case string(String)
        case variable(String)
        case stepStatus(String)
        case stepOutput(step: String, name: String)
        case compare(Node, Node, equal: Bool)
        case not(Node)
        case all([Node])
        case any([Node])
        case success, failure, always
    }

    /// Parses and type-checks an expression.
    /// - Parameter matrix: for an expansion of a matrix step, its combination: `matrix.KEY`
    ///   reads as the string of KEY's value (fixed at load, like `${matrix.KEY}`); nil for a step
    ///   without a matrix, where `matrix.KEY` is an error.
    /// - Throws: ``Problem`` with the column of the first mistake.
    public init(parsing text: String, matrix: MatrixInstance? = nil) throws(Problem) {
        let characters = Array(text)
        guard characters.count <= Self.maxLength else {
            throw Problem(column: Self.maxLength + 1,
                          message: "the condition is longer than \(Self.maxLength) characters")
        }
        var parser = Parser(tokens: try Lexer.tokens(of: characters), matrix: matrix)
        let (root, type, column) = try parser.parseOr(depth: 0)
        guard parser.current.kind == .end else {
            if parser.current.kind == .close {
                throw Problem(column: parser.current.column, message: "this ')' has no matching '('")
            }
            throw parser.unexpected(after: "the expression")
        }
        guard type == .boolean else {
            throw Problem(column: column, message: "the condition is a string, not a test: compare it, "
                          + "e.g. vars.DEPLOY == 'yes'")
        }
        self.text = text
        self.root = root
        awaitsAnyOutcome = parser.callsStatusFunction
        references = parser.references
    }

    /// The expression as written.
    public var description: String { text }

    /// The first reference that does not resolve for `step` of `graph`: a variable that
    /// `variables` does not have, an unknown step, the step itself, or a step that is not among
    /// its dependencies (direct or transitive), whose status would not be known yet.
    public func unresolvedReference(step: Int, graph: PlanGraph, variables: [String: String]) -> Problem? {
        unresolvedReference(step: step, graph: graph, variables: variables) { graph.isTransitiveDependency($0, of: $1) }
    }

    /// As ``unresolvedReference(step:graph:variables:)``, with the dependency test given
    /// (`isDependency(producer, step)`), e.g. from ``PlanGraph/boundedDescendants(_:)`` for a
    /// whole plan at once.
    public func unresolvedReference(step: Int, graph: PlanGraph, variables: [String: String],
                                    isDependency: (Int, Int) -> Bool) -> Problem? {
        for reference in references {
            switch reference.kind {
            case .variable(let name):
                guard variables[name] == nil else { continue }
                let hint = Suggestion.closest(to: name, among: variables.keys).map { " (did you mean vars.\($0)?)" }
                    ?? "; pass --var \(name)=VALUE or define it in \"variables\""
                return Problem(column: reference.column, message: "unknown variable vars.\(name)\(hint)", kind: .unknownVariable)
            case .stepStatus(let id), .stepOutput(let id, _):
                let own = graph.ids[step]
                guard let other = graph.indexByID[id] else {
                    let hint = PlanGraph.unknownStepHint(id, ids: graph.ids)
                    return Problem(column: reference.column, message: "unknown step \"\(id)\"\(hint)", kind: .reference)
                }
                guard other != step else {
                    return Problem(column: reference.column,
                                   message: "step \"\(own)\" cannot read its own status or outputs in its condition",
                                   kind: .reference)
                }
                guard isDependency(other, step) else {
                    return Problem(column: reference.column,
                                   message: "step \"\(id)\" is not a dependency of step \"\(own)\" (add it to depends_on, "
                                       + "directly or through another step, so it has ended when the condition is decided)",
                                   kind: .reference)
                }
            }
        }
        return nil
    }

    /// Decides the condition.
    public func evaluate(_ inputs: Inputs) -> Bool {
        Self.truth(root, inputs)
    }

    private static func truth(_ node: Node, _ inputs: Inputs) -> Bool {
        switch node {
        case .compare(let left, let right, let equal):
            // Byte for byte, as a shell's `[ "$a" = "$b" ]` compares: Swift's `==` takes
            // canonically equivalent strings as equal ("\u{E9}" and "e\u{301}").
            return value(left, inputs).utf8.elementsEqual(value(right, inputs).utf8) == equal
        case .not(let operand):
            return !truth(operand, inputs)
        case .all(let operands):
            return operands.allSatisfy { truth($0, inputs) }
        case .any(let operands):
            return operands.contains { truth($0, inputs) }
        case .success:
            return inputs.success
        case .failure:
            return inputs.failure
        case .always:
            return true
        case .string, .variable, .stepStatus, .stepOutput:
            preconditionFailure("a string where the type checker allows only booleans")
        }
    }

    private static func value(_ node: Node, _ inputs: Inputs) -> String {
        switch node {
        case .string(let text): return text
        case .variable(let name): return inputs.variable(name) ?? ""
        case .stepStatus(let id): return inputs.status(id)?.rawValue ?? ""
        case .stepOutput(let step, let name): return inputs.output(step, name) ?? ""
        default: preconditionFailure("a boolean where the type checker allows only strings")
        }
    }
}

// MARK: - Lexer

private struct Token: Sendable {
    enum Kind: Sendable, Equatable {
        case string(String), path(String), open, close, comma, equal, notEqual, and, or, not, end
    }
    var kind: Kind
    var column: Int
}

private enum Lexer {
    static func isPathCharacter(_ c: Character) -> Bool {
        guard c.isASCII, let b = c.asciiValue else { return false }
        return (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A)
            || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
    }

    static func tokens(of text: [Character]) throws(StepCondition.Problem) -> [Token] {
        var tokens: [Token] = []
        var i = 0
        func problem(_ message: String, at index: Int) -> StepCondition.Problem {
            StepCondition.Problem(column: index + 1, message: message)
        }
        while i < text.count {
            let c = text[i]
            let column = i + 1
            switch c {
            case " ", "\t", "\n", "\r":
                i += 1
            case "(":
                tokens.append(Token(kind: .open, column: column)); i += 1
            case ")":
                tokens.append(Token(kind: .close, column: column)); i += 1
            case ",":
                // No function takes arguments; lexed so that `contains(a, b)` is reported as an
                // unknown function, not as a stray comma.
                tokens.append(Token(kind: .comma, column: column)); i += 1
            case "=":
                guard i + 1 < text.count, text[i + 1] == "=" else {
                    throw problem("a single '=' is not an operator: compare with == or !=", at: i)
                }
                tokens.append(Token(kind: .equal, column: column)); i += 2
            case "!":
                if i + 1 < text.count, text[i + 1] == "=" {
                    tokens.append(Token(kind: .notEqual, column: column)); i += 2
                } else {
                    tokens.append(Token(kind: .not, column: column)); i += 1
                }
            case "&":
                guard i + 1 < text.count, text[i + 1] == "&" else { throw problem("a single '&': write && for \"and\"", at: i) }
                tokens.append(Token(kind: .and, column: column)); i += 2
            case "|":
                guard i + 1 < text.count, text[i + 1] == "|" else { throw problem("a single '|': write || for \"or\"", at: i) }
                tokens.append(Token(kind: .or, column: column)); i += 2
            case "'":
                var value = ""
                var j = i + 1
                while true {
                    guard j < text.count else {
                        throw problem("the string that starts here has no closing quote (a quote inside a string is written '')", at: i)
                    }
                    if text[j] == "'" {
                        if j + 1 < text.count, text[j + 1] == "'" {
                            value.append("'")
                            j += 2
                            continue
                        }
                        break
                    }
                    value.append(text[j])
                    j += 1
                }
                tokens.append(Token(kind: .string(value), column: column))
                i = j + 1
            case "\"":
                throw problem("strings are written in single quotes ('text'), not double quotes", at: i)
            default:
                guard isPathCharacter(c) else {
                    throw problem("unexpected character '\(TerminalSafe.shown(c))'", at: i)
                }
                var j = i
                while j < text.count, isPathCharacter(text[j]) { j += 1 }
                tokens.append(Token(kind: .path(String(text[i..<j])), column: column))
                i = j
            }
        }
        tokens.append(Token(kind: .end, column: text.count + 1))
        return tokens
    }
}

/// Characters shown in messages: controls escaped, so an error never carries raw control bytes.
private enum TerminalSafe {
    static func shown(_ c: Character) -> String {
        c.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
    }
}

// MARK: - Parser

private struct Parser {
    enum ValueType { case string, boolean }
    typealias Parsed = (node: StepCondition.Node, type: ValueType, column: Int)

    let tokens: [Token]
    var position = 0
    var references: [StepCondition.Reference] = []
    var callsStatusFunction = false
    /// The combination `matrix.KEY` reads, for an expansion of a matrix step.
    let matrix: MatrixInstance?

    init(tokens: [Token], matrix: MatrixInstance?) {
        self.tokens = tokens
        self.matrix = matrix
    }

    var current: Token { tokens[position] }

    mutating func advance() -> Token {
        let token = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return token
    }

    static func describe(_ kind: Token.Kind) -> String {
        switch kind {
        case .string: return "a string"
        case .path(let text): return "'\(text)'"
        case .open: return "'('"
        case .close: return "')'"
        case .comma: return "','"
        case .equal: return "'=='"
        case .notEqual: return "'!='"
        case .and: return "'&&'"
        case .or: return "'||'"
        case .not: return "'!'"
        case .end: return "the end of the condition"
        }
    }

    func unexpected(after what: String) -> StepCondition.Problem {
        let token = current
        if token.kind == .equal || token.kind == .notEqual {
            return StepCondition.Problem(column: token.column,
                                         message: "comparisons do not chain: join them with && or ||")
        }
        return StepCondition.Problem(column: token.column, message: "unexpected \(Self.describe(token.kind)) after \(what)")
    }

    func need(_ parsed: Parsed, _ type: ValueType, for op: String) throws(StepCondition.Problem) {
        guard parsed.type != type else { return }
        let message = type == .boolean
            ? "\(op) needs a true/false test here, not a string (compare it with == or !=)"
            : "\(op) compares strings, not true/false tests"
        throw StepCondition.Problem(column: parsed.column, message: message)
    }

    mutating func parseOr(depth: Int) throws(StepCondition.Problem) -> Parsed {
        let first = try parseAnd(depth: depth)
        guard current.kind == .or else { return first }
        try need(first, .boolean, for: "||")
        var operands = [first.node]
        while current.kind == .or {
            _ = advance()
            let next = try parseAnd(depth: depth)
            try need(next, .boolean, for: "||")
            operands.append(next.node)
        }
        return (.any(operands), .boolean, first.column)
    }

    mutating func parseAnd(depth: Int) throws(StepCondition.Problem) -> Parsed {
        let first = try parseComparison(depth: depth)
        guard current.kind == .and else { return first }
        try need(first, .boolean, for: "&&")
        var operands = [first.node]
        while current.kind == .and {
            _ = advance()
            let next = try parseComparison(depth: depth)
            try need(next, .boolean, for: "&&")
            operands.append(next.node)
        }
        return (.all(operands), .boolean, first.column)
    }

    mutating func parseComparison(depth: Int) throws(StepCondition.Problem) -> Parsed {
        let left = try parseUnary(depth: depth)
        guard current.kind == .equal || current.kind == .notEqual else { return left }
        let op = advance()
        let name = op.kind == .equal ? "==" : "!="
        try need(left, .string, for: name)
        let right = try parseUnary(depth: depth)
        try need(right, .string, for: name)
        if current.kind == .equal || current.kind == .notEqual { throw unexpected(after: "a comparison") }
        return (.compare(left.node, right.node, equal: op.kind == .equal), .boolean, left.column)
    }

    mutating func parseUnary(depth: Int) throws(StepCondition.Problem) -> Parsed {
        guard current.kind == .not else { return try parsePrimary(depth: depth) }
        let bang = advance()
        try checkDepth(depth + 1, at: bang.column)
        let operand = try parseUnary(depth: depth + 1)
        guard operand.type == .boolean else {
            throw StepCondition.Problem(column: operand.column,
                                        message: "! needs a true/false test, not a string (compare it with == or !=)")
        }
        return (.not(operand.node), .boolean, bang.column)
    }

    func checkDepth(_ depth: Int, at column: Int) throws(StepCondition.Problem) {
        guard depth <= StepCondition.maxDepth else {
            throw StepCondition.Problem(column: column, message: "the condition nests more than \(StepCondition.maxDepth) deep")
        }
    }

    mutating func parsePrimary(depth: Int) throws(StepCondition.Problem) -> Parsed {
        let token = advance()
        switch token.kind {
        case .open:
            try checkDepth(depth + 1, at: token.column)
            let inner = try parseOr(depth: depth + 1)
            guard current.kind == .close else {
                if current.kind == .end {
                    throw StepCondition.Problem(column: token.column, message: "this '(' is never closed")
                }
                throw unexpected(after: "the expression in parentheses")
            }
            _ = advance()
            return (inner.node, inner.type, token.column)
        case .string(let value):
            return (.string(value), .string, token.column)
        case .path(let path):
            if current.kind == .open { return try parseCall(path, at: token.column) }
            return try reference(path, at: token.column)
        case .end:
            throw StepCondition.Problem(column: token.column, message: tokens.count == 1
                                        ? "the condition is empty" : "the condition ends where a value was expected")
        default:
            throw StepCondition.Problem(column: token.column, message: "expected a value, found \(Self.describe(token.kind))")
        }
    }

    static let functions = ["success", "failure", "always"]

    mutating func parseCall(_ name: String, at column: Int) throws(StepCondition.Problem) -> Parsed {
        let node: StepCondition.Node
        switch name {
        case "success": node = .success
        case "failure": node = .failure; callsStatusFunction = true
        case "always": node = .always; callsStatusFunction = true
        default:
            let hint = Suggestion.closest(to: name, among: Self.functions).map { " (did you mean \($0)()?)" }
                ?? " (the functions are success(), failure() and always())"
            throw StepCondition.Problem(column: column, message: "unknown function \(name)()\(hint)")
        }
        _ = advance()
        guard current.kind == .close else {
            throw StepCondition.Problem(column: current.column, message: "\(name)() takes no arguments")
        }
        _ = advance()
        return (node, .boolean, column)
    }

    mutating func reference(_ path: String, at column: Int) throws(StepCondition.Problem) -> Parsed {
        func problem(_ message: String) -> StepCondition.Problem { StepCondition.Problem(column: column, message: message) }
        if path.hasPrefix("vars.") {
            let name = String(path.dropFirst(5))
            guard VariableSubstitution.isValidName(name) else {
                throw problem("'\(path)': a variable name is letters, digits and _, not starting with a digit")
            }
            references.append(.init(kind: .variable(name), column: column))
            return (.variable(name), .string, column)
        }
        if path.hasPrefix("steps.") {
            let rest = path.dropFirst(6)
            if rest.hasSuffix(".status"), rest.count > 7 {
                let id = String(rest.dropLast(7))
                references.append(.init(kind: .stepStatus(id), column: column))
                return (.stepStatus(id), .string, column)
            }
            if let marker = rest.range(of: ".outputs.", options: .backwards) {
                let id = String(rest[..<marker.lowerBound])
                let name = String(rest[marker.upperBound...])
                guard !id.isEmpty, !name.isEmpty, !name.contains(".") else {
                    throw problem("'\(path)' is not steps.ID.outputs.NAME")
                }
                // As a step can write it (and ${steps.ID.outputs.NAME} reads it): any other name
                // could never be set, and would always read as ''.
                guard VariableSubstitution.isValidName(name) else {
                    throw problem("'\(path)': an output name is letters, digits and _, not starting with a digit")
                }
                references.append(.init(kind: .stepOutput(step: id, name: name), column: column))
                return (.stepOutput(step: id, name: name), .string, column)
            }
            throw problem("'\(path)': a step is read as steps.ID.status or steps.ID.outputs.NAME")
        }
        if path.hasPrefix("matrix.") {
            let key = String(path.dropFirst(7))
            guard let matrix else {
                throw problem("'\(path)': the step has no \"matrix\", so there is no matrix.\(key)")
            }
            guard let value = matrix.values.first(where: { $0.key == key })?.value else {
                let keys = matrix.values.map { "matrix.\($0.key)" }.joined(separator: ", ")
                throw problem("'\(path)': this expansion of matrix step \"\(matrix.step)\" has no key \(key) (it has \(keys))")
            }
            return (.string(value), .string, column)
        }
        if Self.functions.contains(path) { throw problem("\(path) is a function: write \(path)()") }
        let hint = path == "true" || path == "false" ? " (there are no boolean literals: use always() or a comparison)" : ""
        throw problem("unknown name '\(path)': a condition reads vars.NAME, steps.ID.status, "
                      + "steps.ID.outputs.NAME, matrix.KEY, 'strings' and success(), failure(), always()\(hint)")
    }
}

extension PlanGraph {
    /// The first step (in plan order) whose `"if"` does not resolve, with the problem; nil when
    /// all do. The dependency tests of all conditions share one bounded walk per step they read
    /// (``boundedDescendants(_:)``): 100,000 conditions that read the first step cost one walk,
    /// not 100,000.
    public func firstConditionProblem(_ steps: [Step], variables: [String: String]) -> (step: Int, problem: StepCondition.Problem)? {
        var pairs: [(step: Int, producer: Int)] = []
        for (index, step) in steps.enumerated() {
            for reference in step.condition?.references ?? [] {
                if let id = reference.step, let producer = indexByID[id] { pairs.append((index, producer)) }
            }
        }
        let descendants = boundedDescendants(pairs)
        for (index, step) in steps.enumerated() {
            guard let condition = step.condition,
                  let problem = condition.unresolvedReference(step: index, graph: self, variables: variables, isDependency: {
                      descendants[$0]?.contains($1) ?? false
                  }) else { continue }
            return (index, problem)
        }
        return nil
    }
}
