import Foundation
import Testing
@testable import Orchestration

@Suite("Env files: the strict dotenv parser (SPEC §11)")
struct EnvFileTests {
    private func parse(_ text: String) throws(EnvFile.Problem) -> [String] {
        try EnvFile(parsing: Array(text.utf8)).entries.map { "\($0.name)=\($0.value)@\($0.line)" }
    }

    @Test func everyFormIsRead() throws {
        let text = """
            # a comment

            PLAIN=hello world   # trailing comment
            export EXPORTED=1
            SINGLE='literal $HOME \\n # not a comment'
            DOUBLE="line1\\nline2 \\"quoted\\" back\\\\slash" # comment
            EMPTY=
            HASH=a#b
            CRLF=x\r
               INDENTED=y
            """
        #expect(try parse(text) == [
            "PLAIN=hello world@3", "EXPORTED=1@4", "SINGLE=literal $HOME \\n # not a comment@5",
            "DOUBLE=line1\nline2 \"quoted\" back\\slash@6", "EMPTY=@7", "HASH=a#b@8", "CRLF=x@9", "INDENTED=y@10",
        ])
        #expect(try parse("") == [])
    }

    @Test(arguments: [
        ("A=1\nnot a line\n", 2, 4, "not must be followed by \"=\""),
        ("A = 1\n", 1, 2, "no blank is allowed between A and \"=\""),
        ("NAME\n", 1, 5, "NAME has no \"=\""),
        ("1A=x\n", 1, 1, "expected NAME=VALUE"),
        ("=x\n", 1, 1, "expected NAME=VALUE"),
        ("A='open\n", 1, 3, "single-quoted value of A is not closed"),
        ("A=\"open\n", 1, 3, "double-quoted value of A is not closed"),
        ("A=\"bad \\t escape\"\n", 1, 8, "unknown escape \\t"),
        ("A='x' y\n", 1, 7, "unexpected text after the quoted value of A"),
        ("A=1\nB=2\nA=3\n", 3, 1, "A is set twice (first on line 1)"),
        ("A=a\u{0}b\n", 1, 4, "NUL byte"),
    ] as [(String, Int, Int, String)])
    func aMalformedLineIsLocated(_ text: String, line: Int, column: Int, message: String) {
        #expect {
            _ = try parse(text)
        } throws: { error in
            guard let problem = error as? EnvFile.Problem else { return false }
            return problem.line == line && problem.column == column && problem.message.contains(message)
        }
    }

    @Test func invalidUTF8InAValueIsRefused() {
        #expect(throws: EnvFile.Problem.self) { try EnvFile(parsing: Array("A=".utf8) + [0xFF]) }
    }

    @Test func entriesActLikeEnvWithThePlansOwnEnvWinningAndSecretsMasked() throws {
        let dir = NSTemporaryDirectory() + "omnibase-envfile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/conf", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "A=global-file\nB=global-file\nC=global-file\nD=global-file\nAPI_TOKEN=tok-from-file-123\n"
            .write(toFile: dir + "/conf/global.env", atomically: true, encoding: .utf8)
        try "C=step-file\nD=step-file\nPLAIN=${NOT_EXPANDED}\n".write(toFile: dir + "/step.env", atomically: true, encoding: .utf8)
        let plan = """
            {"plan_id": "P", "version": "1",
             "globals": {"env_file": "conf/global.env", "env": {"B": "global-env"}},
             "steps": [{"id": "a", "command": "true", "env_file": "step.env", "env": {"D": "step-env"}},
                       {"id": "b", "command": "true"}]}
            """
        try plan.write(toFile: dir + "/p.json", atomically: true, encoding: .utf8)
        let loaded = try PlanLoader.load(path: dir + "/p.json")
        let a = try #require(loaded.plan.steps[0].processCommand?.environment)
        #expect(a["A"] == "global-file" && a["B"] == "global-env" && a["C"] == "step-file" && a["D"] == "step-env")
        #expect(a["PLAIN"] == "${NOT_EXPANDED}", "env file values are data, never substituted")
        let b = try #require(loaded.plan.steps[1].processCommand?.environment)
        #expect(b["C"] == "global-file" && b["PLAIN"] == nil)
        // The files' texts are in the source that is stored with the run.
        #expect(loaded.source.envFiles?.keys.sorted() == [dir + "/conf/global.env", dir + "/step.env"])
        // A secret name from a file is masked like a variable.
        #expect(loaded.plan.secretMask(environment: [:]).apply("token tok-from-file-123 here") == "token *** here")
        // Loaded again from the stored source with the files gone: the same environment.
        try FileManager.default.removeItem(atPath: dir + "/conf/global.env")
        try FileManager.default.removeItem(atPath: dir + "/step.env")
        let again = try PlanLoader.load(loaded.source)
        #expect(again.plan.steps[0].processCommand?.environment == a)
    }
}
