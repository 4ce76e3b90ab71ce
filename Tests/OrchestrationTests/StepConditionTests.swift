import Testing
@testable import Orchestration

/// The `"if"` language: every operator, precedence, types, and every load error with its column.
@Suite("Step conditions: parser and evaluator")
struct StepConditionTests {
    /// Evaluates with fixed inputs: X = "x", QUOTE = "it's", EMPTY = "", step a failed, output
    /// a.kind = "full".
    static func eval(_ text: String, success: Bool = true, failure: Bool = false) throws -> Bool {
        let condition = try StepCondition(parsing: text)
        let variables = ["X": "x", "QUOTE": "it's", "EMPTY": ""]
        return condition.evaluate(StepCondition.Inputs(
            success: success, failure: failure, variable: { variables[$0] },
            status: { $0 == "a" ? .failed : nil },
            output: { step, name in step == "a" && name == "kind" ? "full" : nil }))
    }

    static func problem(_ text: String) -> StepCondition.Problem? {
        do {
            _ = try StepCondition(parsing: text)
            return nil
        } catch {
            return error
        }
    }

    @Test func comparisonsOfStringsVariablesStatusesAndOutputs() throws {
        #expect(try Self.eval("vars.X == 'x'"))
        #expect(try !Self.eval("vars.X != 'x'"))
        #expect(try Self.eval("vars.X != 'y'"))
        #expect(try Self.eval("vars.QUOTE == 'it''s'"), "'' is a quote inside a string")
        #expect(try Self.eval("'''' == '''' && '' == vars.EMPTY"))
        #expect(try Self.eval("steps.a.status == 'failed'"))
        #expect(try Self.eval("steps.a.outputs.kind == 'full'"))
        #expect(try Self.eval("steps.a.outputs.other == ''"), "a missing output reads as ''")
        #expect(try Self.eval("'a b  (c) && || !' == 'a b  (c) && || !'"), "a string's content is data, not operators")
        #expect(try Self.eval("'${X}' != vars.X"), "nothing in a string is expanded")
        // Byte for byte: canonically equivalent spellings are different strings (they compared
        // equal, as Swift's == takes them).
        #expect(try Self.eval("'\u{E9}' != 'e\u{301}'"))
        #expect(try !Self.eval("'\u{E9}' == 'e\u{301}'"))
        #expect(try Self.eval("'\u{E9}' == '\u{E9}'"))
    }

    @Test func booleanOperatorsAndFunctions() throws {
        #expect(try Self.eval("success()"))
        #expect(try !Self.eval("success()", success: false))
        #expect(try Self.eval("failure()", failure: true))
        #expect(try !Self.eval("failure()"))
        #expect(try Self.eval("always()", success: false))
        #expect(try Self.eval("!failure()"))
        #expect(try Self.eval("!!success()"))
        #expect(try Self.eval("success() && vars.X == 'x'"))
        #expect(try !Self.eval("success() && vars.X == 'y'"))
        #expect(try Self.eval("vars.X == 'y' || success()"))
        #expect(try !Self.eval("vars.X == 'y' || failure()"))
        #expect(try Self.eval("  success( )\n&&\talways( ) "), "white space anywhere between tokens")
    }

    @Test func precedenceIsNotThenComparisonThenAndThenOr() throws {
        // && binds tighter than ||: true || (false && false).
        #expect(try Self.eval("'a' == 'a' || 'a' == 'b' && 'x' == 'y'"))
        // Parentheses override it: (true || false) && false.
        #expect(try !Self.eval("('a' == 'a' || 'a' == 'b') && 'x' == 'y'"))
        // ! binds tighter than &&: (!false) && true.
        #expect(try Self.eval("!failure() && success()"))
        #expect(try !Self.eval("!(failure() || success())"))
        // == binds tighter than &&: (X == 'x') && ('y' == 'y').
        #expect(try Self.eval("vars.X == 'x' && 'y' == 'y'"))
        // ! binds tighter than ==, so "!vars.X == 'x'" negates a string: refused.
        #expect(Self.problem("!vars.X == 'x'") == .init(column: 2, message: "! needs a true/false test, not a string (compare it with == or !=)"))
        #expect(try Self.eval("((((vars.X == 'x'))))"))
    }

    @Test func whatTheConditionReadsAndWhetherItAwaitsAnyOutcome() throws {
        let condition = try StepCondition(parsing: "vars.X == 'x' && (steps.a.b.status == 'failed' || steps.c-d.outputs.n == '')")
        #expect(condition.references == [.init(kind: .variable("X"), column: 1),
                                         .init(kind: .stepStatus("a.b"), column: 19),
                                         .init(kind: .stepOutput(step: "c-d", name: "n"), column: 51)])
        #expect(!condition.awaitsAnyOutcome)
        #expect(try !StepCondition(parsing: "success()").awaitsAnyOutcome)
        #expect(try StepCondition(parsing: "failure()").awaitsAnyOutcome)
        #expect(try StepCondition(parsing: "vars.X == 'x' || !always()").awaitsAnyOutcome)
    }

    @Test(arguments: [
        ("", 1, "the condition is empty"),
        ("   ", 4, "the condition is empty"),
        ("vars.X == 'a", 11, "the string that starts here has no closing quote (a quote inside a string is written '')"),
        ("vars.X = 'a'", 8, "a single '=' is not an operator: compare with == or !="),
        ("success() & always()", 11, "a single '&': write && for \"and\""),
        ("success() | always()", 11, "a single '|': write || for \"or\""),
        ("vars.X == \"a\"", 11, "strings are written in single quotes ('text'), not double quotes"),
        ("success() # note", 11, "unexpected character '#'"),
        ("succes()", 1, "unknown function succes() (did you mean success()?)"),
        ("contains(vars.X, 'a')", 1, "unknown function contains() (the functions are success(), failure() and always())"),
        ("success(1)", 9, "success() takes no arguments"),
        ("success", 1, "success is a function: write success()"),
        ("true", 1, "unknown name 'true': a condition reads vars.NAME, steps.ID.status, steps.ID.outputs.NAME, "
            + "matrix.KEY, 'strings' and success(), failure(), always() (there are no boolean literals: use always() or a comparison)"),
        ("env.HOME == 'x'", 1, "unknown name 'env.HOME': a condition reads vars.NAME, steps.ID.status, "
            + "steps.ID.outputs.NAME, matrix.KEY, 'strings' and success(), failure(), always()"),
        ("vars.1X == 'a'", 1, "'vars.1X': a variable name is letters, digits and _, not starting with a digit"),
        ("steps.a == 'x'", 1, "'steps.a': a step is read as steps.ID.status or steps.ID.outputs.NAME"),
        ("steps.a.outputs. == 'x'", 1, "'steps.a.outputs.' is not steps.ID.outputs.NAME"),
        // Names no step can write (they were accepted, and always read as ''):
        ("steps.a.outputs.dep-loy == ''", 1, "'steps.a.outputs.dep-loy': an output name is letters, digits and _, "
            + "not starting with a digit"),
        ("steps.a.outputs.9x == ''", 1, "'steps.a.outputs.9x': an output name is letters, digits and _, not starting with a digit"),
        ("vars.X", 1, "the condition is a string, not a test: compare it, e.g. vars.DEPLOY == 'yes'"),
        ("(vars.X)", 1, "the condition is a string, not a test: compare it, e.g. vars.DEPLOY == 'yes'"),
        ("vars.X && success()", 1, "&& needs a true/false test here, not a string (compare it with == or !=)"),
        ("success() && vars.X", 14, "&& needs a true/false test here, not a string (compare it with == or !=)"),
        ("vars.X || success()", 1, "|| needs a true/false test here, not a string (compare it with == or !=)"),
        ("failure() || 'x'", 14, "|| needs a true/false test here, not a string (compare it with == or !=)"),
        ("success() == 'a'", 1, "== compares strings, not true/false tests"),
        ("'a' != success()", 8, "!= compares strings, not true/false tests"),
        ("!vars.X", 2, "! needs a true/false test, not a string (compare it with == or !=)"),
        ("'a' == 'b' == 'c'", 12, "comparisons do not chain: join them with && or ||"),
        ("('a' == 'a'", 1, "this '(' is never closed"),
        ("('a' == 'a' 'b')", 13, "unexpected a string after the expression in parentheses"),
        ("'a' == 'a')", 11, "this ')' has no matching '('"),
        ("'a' ==", 7, "the condition ends where a value was expected"),
        ("success() &&", 13, "the condition ends where a value was expected"),
        ("( )", 3, "expected a value, found ')'"),
        ("success(), always()", 10, "unexpected ',' after the expression"),
        ("&& success()", 1, "expected a value, found '&&'"),
        ("success() always()", 11, "unexpected 'always' after the expression"),
    ])
    func everyMistakeIsRefusedWithItsColumn(text: String, column: Int, message: String) {
        #expect(Self.problem(text) == .init(column: column, message: message), "\(text)")
    }

    @Test func nestingAndLengthAreBounded() throws {
        #expect(try Self.eval(String(repeating: "!", count: 32) + "success()"))
        #expect(Self.problem(String(repeating: "!", count: 33) + "success()")
                == .init(column: 33, message: "the condition nests more than 32 deep"))
        #expect(try Self.eval(String(repeating: "(", count: 32) + "success()" + String(repeating: ")", count: 32)))
        #expect(Self.problem(String(repeating: "(", count: 33) + "success()" + String(repeating: ")", count: 33))
                == .init(column: 33, message: "the condition nests more than 32 deep"))
        // A long chain is flat, not deep.
        let chain = Array(repeating: "'a' == 'a'", count: 250).joined(separator: " && ")
        #expect(try Self.eval(chain))
        #expect(Self.problem(String(repeating: " ", count: 4097))
                == .init(column: 4097, message: "the condition is longer than 4096 characters"))
    }

    @Test func columnsCountCharactersNotBytes() {
        #expect(Self.problem("'héllo wörld' = 'x'")
                == .init(column: 15, message: "a single '=' is not an operator: compare with == or !="))
    }

    @Test func referencesMustBeKnownAndAmongTheTransitiveDependencies() throws {
        // a <- b <- c; d alone.
        let graph = try PlanGraph(ids: ["a", "b", "c", "d"], dependsOn: [[], ["a"], ["b"], []])
        func check(_ text: String, step: Int = 2, variables: [String: String] = ["DEPLOY": "1"]) throws -> StepCondition.Problem? {
            try StepCondition(parsing: text).unresolvedReference(step: step, graph: graph, variables: variables)
        }
        #expect(try check("steps.a.status == 'succeeded' && steps.b.outputs.x == '' && vars.DEPLOY == '1'") == nil,
                "a transitive dependency, a direct one, a known variable")
        #expect(try check("success() && vars.DEPLY == '1'")
                == .init(column: 14, message: "unknown variable vars.DEPLY (did you mean vars.DEPLOY?)", kind: .unknownVariable))
        #expect(try check("vars.OTHER == '1'", variables: [:])
                == .init(column: 1, message: "unknown variable vars.OTHER; pass --var OTHER=VALUE or define it in \"variables\"",
                         kind: .unknownVariable))
        #expect(try check("steps.bb.status == 'failed'")
                == .init(column: 1, message: "unknown step \"bb\" (did you mean \"b\"?)", kind: .reference))
        #expect(try check("'x' == steps.c.status")
                == .init(column: 8, message: "step \"c\" cannot read its own status or outputs in its condition", kind: .reference))
        #expect(try check("steps.d.outputs.n == 'x'")
                == .init(column: 1, message: "step \"d\" is not a dependency of step \"c\" (add it to depends_on, directly or "
                         + "through another step, so it has ended when the condition is decided)", kind: .reference))
        #expect(try check("steps.c.status == 'failed'", step: 0)
                == .init(column: 1, message: "step \"c\" is not a dependency of step \"a\" (add it to depends_on, directly or "
                         + "through another step, so it has ended when the condition is decided)", kind: .reference),
                "a dependent is not a dependency")
    }

    /// 100,000 conditions that read the first step of a chain are checked with one walk of the
    /// DAG (a walk per condition took 40 s for 20,000 steps, and would take hours for 100,000);
    /// a condition reading a later step is still found.
    @Test(.timeLimit(.minutes(1))) func checkingEveryConditionOfALongChainIsOneWalk() throws {
        let count = 100_000
        let condition = try StepCondition(parsing: "steps.s0.status == 'succeeded'")
        var steps = (0..<count).map { index in
            Step(id: "s\(index)", action: .process(ProcessCommand(command: "true")),
                 dependsOn: index == 0 ? [] : ["s\(index - 1)"], condition: index == 0 ? nil : condition)
        }
        let plan = Plan(id: "long", steps: steps)
        let graph = try PlanGraph(steps: plan.steps)
        #expect(graph.firstConditionProblem(plan.steps, variables: [:]) == nil)
        steps[5].condition = try StepCondition(parsing: "steps.s9.status == 'failed'")
        let found = graph.firstConditionProblem(steps, variables: [:])
        #expect(found?.step == 5)
        #expect(found?.problem.message.contains("is not a dependency of step \"s5\"") == true)
    }
}
