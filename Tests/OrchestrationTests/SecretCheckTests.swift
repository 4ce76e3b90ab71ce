import Testing
@testable import Orchestration

/// The short salted check a run keeps of each secret value it does not store.
struct SecretCheckTests {
    @Test func aValuePassesItsOwnCheckAndAnotherDoesNot() {
        let check = SecretCheck.make("hunter2-pw")
        #expect(check.wholeMatch(of: /1:[0-9a-f]{16}:[0-9a-f]{4}/) != nil, "\(check)")
        #expect(SecretCheck.matches(check, value: "hunter2-pw") == true)
        // Wrong values: a typo, a prefix, the empty string, a longer one.
        let wrong = ["hunter2-pX", "hunter2", "", "hunter2-pw ", "Hunter2-pw"]
        #expect(wrong.filter { SecretCheck.matches(check, value: $0) == true }.count <= 1)
        #expect(SecretCheck.matches("2:00:00", value: "x") == nil, "a later format checks nothing")
        #expect(SecretCheck.matches("1:zz:0000", value: "x") == nil)
    }

    /// Salted: the same value gets different checks, so a stored check cannot be looked up.
    @Test func theSameValueGetsDifferentChecks() {
        let checks = Set((0..<8).map { _ in SecretCheck.make("hunter2-pw") })
        #expect(checks.count == 8)
    }

    @Test func aSourceRefusesOnlyValuesThatFailEveryCheck() {
        let source = PlanSource(displayPath: "p.json", directory: "/", bytes: [], overrides: ["TOKEN": "first"])
            .withholding { $0 == "TOKEN" }
        #expect(source.overrides.isEmpty && source.withheldSecrets == ["TOKEN"])
        #expect(source.unknownSecretValues(["TOKEN": "first"]).isEmpty)
        #expect(source.unknownSecretValues(["TOKEN": "second"]) == ["TOKEN"])
        var resumed = source
        resumed.secretChecks = source.secretChecks(adding: ["TOKEN": "second"])
        #expect(resumed.secretChecks["TOKEN"]?.count == 2)
        #expect(resumed.unknownSecretValues(["TOKEN": "second"]).isEmpty)
        #expect(resumed.secretsWithSeveralValues == ["TOKEN"])
        #expect(resumed.secretChecks(adding: ["TOKEN": "first"]) == resumed.secretChecks, "a known value adds nothing")
    }
}
