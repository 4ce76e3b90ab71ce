import Foundation
import Presentation
import Testing
@testable import Orchestration

/// Issue 15 item 1: a failed step's stderr shown where people look (the human report, the
/// progress lines), bounded and masked; the HTML report keeps every failed attempt's tail.
@Suite("failures shown: stderr tails", .serialized, .timeLimit(.minutes(3)))
struct FailureOutputTests {
    static let secret = "tok-8f3a-51c9-secret"

    /// A plan whose `compile` step writes 15 numbered lines (the secret, a tab, an escape
    /// sequence among them) and an error to stderr, then fails.
    static func failingPlan(_ dir: TempDir) -> String {
        let script = """
            i=1; while [ $i -le 15 ]; do echo "noise line $i" >&2; i=$((i+1)); done; \
            printf 'key\\t%s\\n' "$API_TOKEN" >&2; printf '\\033]0;evil title\\007x.c:3: error: expected ;\\n' >&2; exit 1
            """
        return dir.write("p.json", planJSON([
            stepJSON("compile", script, extra: "\"env\": {\"API_TOKEN\": \"${API_TOKEN}\"}"),
            stepJSON("link", "true", deps: ["compile"]),
        ], variables: "{\"API_TOKEN\": \"\(secret)\"}", id: "FAIL-TAIL"))
    }

    @Test func humanReportAndProgressLinesShowTheFailedStepsStderrTailMasked() async throws {
        let dir = TempDir()
        let plan = Self.failingPlan(dir)
        let result = await runCLI(["run", plan, "--state-dir", dir.path + "/s", "--format", "human"], in: dir.path)
        #expect(result.status == 1, "\(result.stderr)")
        for (name, output) in [("report", result.stdout), ("progress", result.stderr)] {
            #expect(output.contains("| x.c:3: error: expected ;"), "\(name): \(output)")
            #expect(output.contains("| key    ***"), "\(name): \(output)")
            #expect(!output.contains(Self.secret), "\(name): \(output)")
            #expect(!output.contains("\u{1B}"), "\(name)")
            #expect(!output.contains("evil title"), "\(name)")
            // The last 10 lines of 17: lines 8 to 15, then the key and the error.
            #expect(output.contains("| noise line 8\n"), "\(name): \(output)")
            #expect(!output.contains("noise line 7\n"), "\(name): \(output)")
            #expect(output.contains("(cut: the last 10 lines shown; the whole log is runs/"), "\(name): \(output)")
        }
        // Under the failed step's line in the report, not under the skipped one.
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let compile = try #require(lines.firstIndex { $0.contains("compile") && $0.contains("exited with code 1") })
        #expect(lines[compile + 1].hasPrefix("      | noise line 8"), "\(result.stdout)")
    }

    @Test func theTailIsBoundedInBytesToo() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("wide", "i=1; while [ $i -le 5 ]; do head -c 1500 /dev/zero | tr '\\0' a >&2; echo \" end $i\" >&2; i=$((i+1)); done; exit 3"),
        ], id: "WIDE"))
        let state = dir.path + "/s"
        let result = await runCLI(["run", plan, "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(result.status == 1, "\(result.stderr)")
        let runID = try #require(try result.json()["run_id"]?.stringValue)
        let tail = try #require(FailureTail.read(stateDirectory: try StateDirectory(path: state), runID: runID, stepID: "wide",
                                                 attempt: 1, mask: SecretMask(values: [])))
        #expect(tail.lines.joined(separator: "\n").utf8.count <= 2048)
        #expect(tail.lines.last == String(repeating: "a", count: 1500) + " end 5")
        #expect(tail.lines.count == 1)
        #expect(tail.cut)
    }

    @Test func aSecretThatBeginsBeforeTheShownBytesIsMaskedWhole() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("leak", "printf '%s' \"$API_TOKEN\" >&2; head -c 2040 /dev/zero | tr '\\0' b >&2; exit 1",
                     extra: "\"env\": {\"API_TOKEN\": \"${API_TOKEN}\"}"),
        ], variables: "{\"API_TOKEN\": \"\(Self.secret)\"}", id: "LEAK"))
        let result = await runCLI(["run", plan, "--state-dir", dir.path + "/s", "--format", "human"], in: dir.path)
        #expect(result.status == 1, "\(result.stderr)")
        // The last 2,048 bytes of the log hold the secret's last 8 characters: masked before the cut.
        #expect(result.stdout.contains("| ***bbbb"), "\(result.stdout)")
        #expect(!result.stdout.contains(String(Self.secret.suffix(6))), "\(result.stdout)")
        #expect(!result.stderr.contains(String(Self.secret.suffix(6))), "\(result.stderr)")
    }

    @Test func htmlReportKeepsEveryFailedAttemptsTailAcrossRetriesAndResume() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let counter = dir.path + "/count"
        let plan = dir.write("p.json", planJSON([
            stepJSON("flaky", "n=$(cat '\(counter)' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '\(counter)'; "
                     + "echo \"failure number $n\" >&2; printf '%s\\n' \"$API_TOKEN\" >&2; exit 1",
                     extra: "\"retries\": 1, \"retry_delay_sec\": 0.05, \"env\": {\"API_TOKEN\": \"${API_TOKEN}\"}"),
        ], variables: "{\"API_TOKEN\": \"\(Self.secret)\"}", id: "FLAKY"))
        let first = await runCLI(["run", plan, "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(first.status == 1, "\(first.stderr)")
        let runID = try #require(try first.json()["run_id"]?.stringValue)
        let resumed = await runCLI(["resume", runID, "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(resumed.status == 1, "\(resumed.stderr)")
        #expect(dir.read("count")?.trimmingCharacters(in: .whitespacesAndNewlines) == "4")
        let page = await runCLI(["report", runID, "--html", "-", "--state-dir", state], in: dir.path)
        #expect(page.status == 0, "\(page.stderr)")
        for number in 1...4 { #expect(page.stdout.contains("failure number \(number)"), "attempt \(number)") }
        #expect(!page.stdout.contains(Self.secret))
        // Oldest first, the last attempt last.
        let positions = (1...4).compactMap { page.stdout.range(of: "failure number \($0)")?.lowerBound }
        #expect(positions == positions.sorted() && positions.count == 4)
    }
}
