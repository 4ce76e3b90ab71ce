import Foundation
import Glibc
import Testing
@testable import Agents
import Orchestration

/// `serve`'s agents page and `/api/agents` over a real `agents run` session: a task blocked on a
/// CI event, then woken by `ci emit`, its milestone merged; the page's event stream follows.
@Suite("serve: the agents page of a live session", .tags(.cli, .process), .serialized, .timeLimit(.minutes(5)))
struct ServeAgentsTests {
    /// `GET path` on 127.0.0.1:port: status and body.
    static func get(_ port: UInt16, _ path: String) throws -> (status: Int, body: String) {
        let fd = try connect(port)
        defer { close(fd) }
        send(fd, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let split = try #require(text.range(of: "\r\n\r\n"))
        let status = Int(text.split(separator: " ")[1]) ?? 0
        return (status, String(text[split.upperBound...]))
    }

    static func connect(_ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(status == 0)
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func send(_ fd: Int32, _ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads an event stream until `done` holds for what arrived (or the stream ends).
    static func read(_ fd: Int32, until done: (String) -> Bool) -> String {
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !done(text) {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            text += String(decoding: buffer[0..<count], as: UTF8.self)
        }
        return text
    }

    @Test func theAgentsPageShowsWhatABlockedTaskWaitsForThenItsMerge() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            if [ -z "${CI_EVENT:-}" ]; then
                echo "need the deployment first"
                exit 42
            fi
            echo "$CI_EVENT" > woken.txt
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [
            #"{"id": "T1", "role": "qa", "title": "Check <the> deployment", "wait_for": ["deploy.done"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let arguments = ["agents", "run", fixture.project, "--repo", fixture.repo, "--state-dir", fixture.state,
                         "--retry-interval", "0.05", "--auto-merge", "--format", "json"]
        let directory = fixture.dir.path
        let run = Task { await runCLI(arguments, in: directory) }
        try await eventually("T1 to block") { readStatus(fixture.state)?.task("T1")?.state == .blocked }

        // The server, as a separate process over the same state folder.
        let out = fixture.dir.path + "/serve.out"
        let state = fixture.state
        let server = Task {
            await LocalProcess.run(ProcessSpec(command: cliPath, arguments: ["serve", "--listen", "127.0.0.1:0", "--state-dir", state],
                                               workingDirectory: directory, stdoutPath: out, stderrPath: directory + "/serve.err",
                                               timeout: .seconds(300), killGrace: .seconds(2)))
        }
        var port: UInt16 = 0
        try await eventually("the server's URL") {
            let line = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            port = UInt16(line.split(separator: ":").last?.trimmingCharacters(in: CharacterSet(charactersIn: "/\n")) ?? "") ?? 0
            return line.hasSuffix("\n") && port != 0
        }
        let monitor = try StrictJSONParser.parse(Array(try Self.get(port, "/api/monitor").body.utf8)).toValue()
        let serverPID = Int32(try #require(monitor["pid"]?.intValue))
        defer { kill(serverPID, SIGKILL) }

        let page = try Self.get(port, "/agents")
        #expect(page.status == 200)
        #expect(page.body.contains("<tr class=\"task cancelled\" id=\"task-T1\">"), "T1 is blocked")
        #expect(page.body.contains("<span class=\"mono\">deploy.done</span>"), "what it waits for")
        #expect(page.body.contains("Check &lt;the&gt; deployment"))
        #expect(page.body.contains("agent/qa/T1"))
        // The JSON is `agents status --format json`'s.
        let status = await runCLI(["agents", "status", "--state-dir", fixture.state, "--format", "json"], in: directory)
        let api = try StrictJSONParser.parse(Array(try Self.get(port, "/api/agents").body.utf8)).toValue()
        #expect(api == (try status.json()))

        // The page's stream: the current content, then the change when the task is woken.
        let stream = try Self.connect(port)
        defer { close(stream) }
        Self.send(stream, "GET /agents/events HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n")
        let first = Self.read(stream) { $0.contains("event: agents") && $0.contains("id=\"task-T1\"") && $0.hasSuffix("\n\n") }
        #expect(first.contains("<tr class=\"task cancelled\" id=\"task-T1\">"))
        let emit = await runCLI(["ci", "emit", "deploy.done", "--state-dir", fixture.state], in: directory)
        #expect(emit.status == 0, "\(emit.stderr)")
        let result = await run.value
        #expect(result.status == 0, "\(result.stderr)")
        let later = Self.read(stream) { $0.contains("merged into <span class=\"mono\">integration</span>") }
        #expect(later.contains("<tr class=\"task succeeded\" id=\"task-T1\">"), "the stream showed T1 done")
        let final = try Self.get(port, "/agents")
        #expect(final.body.contains("merged into <span class=\"mono\">integration</span> at "))
        #expect(final.body.contains("deploy.done"), "the CI event is listed")
        kill(serverPID, SIGTERM)
        let outcome = await server.value
        #expect(outcome.termination == .exited(143))
    }
}
