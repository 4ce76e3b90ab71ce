import Foundation
import Glibc
import Testing
@testable import Monitor
@testable import Orchestration

/// `serve` against a hostile tester's findings: clients that pipeline and never read, an engine
/// that dies under the runs list, a wildcard address, a live run's exit code, a missing state
/// folder, the server's own refusals under `/api`, and numbers spelled another way.
extension ServeTests {
    /// Whether this machine can listen on ::1.
    static var hasIPv6Loopback: Bool {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        _ = inet_pton(AF_INET6, "::1", &address.sin6_addr)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        } == 0
    }

    /// Twenty clients with a 4 KiB receive buffer each send 2,000 pipelined requests for a run
    /// page in one write and read nothing. Before, the server built page after page for each of
    /// them until the kernel's buffers were full, one connection at a time, on its only thread:
    /// another client's `GET /api/runs` waited 15-27 s and the server burned seconds of CPU. Now
    /// the next pipelined request waits until the client has taken the previous answer, and each
    /// connection gets one request per turn. A client that reads gets at most 100 answers on one
    /// connection (the last closes it).
    @Test func clientsThatPipelineAndDoNotReadCannotFreezeTheServer() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.finishedRun(dir)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        let port = server.port
        let request = "GET /runs/\(runID) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n"
        let pipelined = Array(String(repeating: request, count: 2000).utf8)
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        let before = try Self.cpuSeconds(of: server.pid)
        for _ in 0..<20 {
            let fd = try HTTPClient.connect(port: port, receiveBuffer: 4096)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            // One write: what the kernel takes of it (the rest would block).
            _ = pipelined.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            sockets.append(fd)
        }
        try await Task.sleep(for: .milliseconds(500))
        let started = Date()
        let list = try HTTPClient.get(port: port, path: "/api/runs")
        let waited = Date().timeIntervalSince(started)
        #expect(list.status == 200)
        #expect(waited < 3, "GET /api/runs waited \(waited) s behind clients that do not read")
        try await Task.sleep(for: .seconds(2))
        let used = try Self.cpuSeconds(of: server.pid) - before
        #expect(used < 1.0, "the server used \(used) s of CPU for 20 clients that read nothing")
        for fd in sockets { close(fd) }
        sockets.removeAll()

        // A client that reads: 300 pipelined requests, 100 answers, and the connection closes.
        let reader = try HTTPClient.connect(port: port)
        defer { close(reader) }
        HTTPClient.write(reader, String(repeating: request, count: 300))
        let (bytes, closed) = HTTPClient.read(reader)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK\r\n").count - 1 == 100)
        #expect(closed, "the connection closes after its 100th answer")
        #expect(text.components(separatedBy: "Connection: close\r\n").count - 1 == 1)
        #expect(try HTTPClient.get(port: port, path: "/api/monitor").status == 200)
        #expect(try await server.stop() == 143)
    }

    /// The runs list's stream says when a run's engine dies (`engine gone: resume RUN_ID`), as a
    /// reloaded list does. Before, nothing in the store changes when an engine is killed, so the
    /// list's stream sent nothing and its row said "running" until the page was reloaded.
    @Test func theRunsListStreamSaysWhenAnEngineDies() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("hold.json", planJSON([
            stepJSON("hold", "echo $PPID > \"$D/engine.tmp\"; echo $$$$ >> \"$D/engine.tmp\"; mv \"$D/engine.tmp\" \"$D/engine\"; "
                     + "exec sleep 100", extra: "\"env\": {\"D\": \"\(dir.path)\"}"),
            stepJSON("after", "true", deps: ["hold"]),
        ], id: "PLAN-HOLD"))
        let path = dir.path
        let running = Task { await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: path, timeout: .seconds(120)) }
        let pids = try await waitForFile(dir.path + "/engine", seconds: 30).split(separator: "\n").compactMap { Int32($0) }
        try #require(pids.count == 2)
        let (engine, step) = (pids[0], pids[1])
        defer { kill(-step, SIGKILL) }
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        // The step may start before the engine's commit of the run's start lands.
        var listed: JSONValue?
        for _ in 0..<200 {
            let runs = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/runs").body.utf8)).toValue()
            listed = runs["runs"]?.arrayValue?.first
            if listed?["status"]?.stringValue == "running" { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let runID = try #require(listed?["run_id"]?.stringValue)
        let list = try EventStreamClient(port: server.port, path: "/events")
        let first = try #require(list.events { $0.name == "runs" })
        #expect(first.last?.data.contains("badge running") == true)
        #expect(first.last?.data.contains("engine gone") == false)

        kill(engine, SIGKILL)
        #expect(await running.value.status == 128 + SIGKILL)
        // Read with a short timeout until the row says so, for at most 10 s (heartbeats keep an
        // idle stream from ever timing out).
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(list.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let deadline = Date().addingTimeInterval(10)
        var gone = false
        while !gone && Date() < deadline {
            if let event = list.next(), event.name == "runs", event.data.contains("engine gone: resume \(runID)") { gone = true }
        }
        #expect(gone, "the runs list's stream never said the engine is gone")
        let page = try HTTPClient.get(port: server.port, path: "/")
        #expect(page.body.contains("engine gone: resume \(runID)"))
        #expect(try await server.stop() == 143)
    }

    /// `--listen 0.0.0.0:0` (or `[::]:0`) prints a URL that opens: an address of this machine,
    /// which the Host check accepts (it names the address the client connected to). Before, the
    /// URL named 0.0.0.0 and asking for it with the token got 421. The wildcard itself is still
    /// refused as a Host: a web page may send requests to http://0.0.0.0:PORT/ ("0.0.0.0 day").
    @Test func aWildcardAddressPrintsAURLThatOpens() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.finishedRun(dir)
        let token = "s3cr3t-token-0123456789abcdef"
        let file = dir.write("token", token + "\n")
        chmod(file, 0o600)
        var wildcards = ["0.0.0.0"]
        if Self.hasIPv6Loopback { wildcards.append("[::]") }
        for wildcard in wildcards {
            let server = try await ServeProcess.start(["--listen", "\(wildcard):0", "--token-file", file, "--state-dir", state], dir: dir,
                                                      token: token)
            let url = server.url
            #expect(!url.contains("0.0.0.0") && !url.contains("[::]"), "\(url)")
            let authority = String(url.dropFirst("http://".count).dropLast())
            var host = String(authority[..<authority.lastIndex(of: ":")!])
            if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
            let fd = try HTTPClient.connect(host: host, port: server.port)
            HTTPClient.write(fd, "GET /runs/\(runID) HTTP/1.1\r\nHost: \(authority)\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
            let page = try HTTPClient.readResponse(fd)
            close(fd)
            #expect(page.status == 200, "GET \(url)runs/\(runID) with the token: \(page.status) \(page.body)")
            let wild = try HTTPClient.request(host: host, port: server.port, "GET / HTTP/1.1\r\nHost: \(wildcard):\(server.port)\r\n"
                                              + "Authorization: Bearer \(token)\r\n\r\n")
            #expect(wild.status == 421, "Host \(wildcard):\(server.port)")
            #expect(try await server.stop() == 143)
        }
    }

    /// A run that is still going has no exit code yet: its page and `report --html` show "-",
    /// as its JSON says null. Before, both showed 0.
    @Test func aLiveRunShowsNoExitCode() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = Self.gatedPlan(dir, steps: ["a"])
        let path = dir.path
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: path, timeout: .seconds(120))
        _ = try await waitForFile(dir.path + "/a.running", seconds: 30)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        let runs = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/runs").body.utf8)).toValue()
        let runID = try #require(runs["runs"]?.arrayValue?.first?["run_id"]?.stringValue)
        let shown = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)").body.utf8)).toValue()
        #expect(shown["exit_code"] == .null)
        let page = try HTTPClient.get(port: server.port, path: "/runs/\(runID)").body
        #expect(page.contains("<dt>Exit code</dt><dd>-</dd>"), "the run page of a live run")
        let report = dir.path + "/live.html"
        #expect(await runCLI(["report", runID, "--html", report, "--state-dir", state], in: path).status == 0)
        #expect(try String(contentsOfFile: report, encoding: .utf8).contains("<dt>Exit code</dt><dd>-</dd>"), "report --html")

        _ = FileManager.default.createFile(atPath: dir.path + "/a.go", contents: nil)
        #expect(await run.status == 0)
        #expect(try HTTPClient.get(port: server.port, path: "/runs/\(runID)").body.contains("<dt>Exit code</dt><dd>0</dd>"))
        #expect(try await server.stop() == 143)
    }

    /// `serve` never writes: over a state folder that does not exist it creates nothing, whatever
    /// is asked, and shows an empty history as `runs list` does (no runs, exit 0); when a run
    /// creates the folder, the list follows it. Before, `serve` created the folder at start.
    @Test func aMissingStateFolderIsNotCreated() async throws {
        let dir = TempDir()
        let missing = dir.path + "/no/such/state"
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", missing], dir: dir)
        #expect(server.stderr.contains("no such folder yet"))
        for path in ["/", "/agents", "/api/agents", "/runs/r-x", "/api/runs/r-x", "/api/runs/r-x/events", "/api/monitor"] {
            #expect(try HTTPClient.get(port: server.port, path: path).status < 500, "\(path)")
        }
        // Streams (read with a short timeout: a stream that sends nothing must not hold the test).
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        let list = try EventStreamClient(port: server.port, path: "/events")
        setsockopt(list.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #expect(list.next()?.data.contains("No runs.") == true, "the list's stream of an empty history")
        let waiting = try EventStreamClient(port: server.port, path: "/runs/r-x/events?wait=1")
        let agents = try EventStreamClient(port: server.port, path: "/agents/events")
        setsockopt(agents.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #expect(agents.next()?.data.contains("No agents session") == true)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/no"), "nothing is created")
        let listed = await runCLI(["runs", "list", "--format", "json", "--state-dir", missing], in: dir.path)
        #expect(listed.status == 0)
        let api = try HTTPClient.get(port: server.port, path: "/api/runs")
        #expect(try StrictJSONParser.parse(Array(api.body.utf8)).toValue() == (try listed.json()))
        #expect(try HTTPClient.get(port: server.port, path: "/").body.contains("No run history in \(missing) yet"))

        // A run creates the folder: the list's stream shows it.
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")], id: "PLAN-LATE"))
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", missing], in: dir.path)
        #expect(run.status == 0)
        let runID = try #require(try run.json()["run_id"]?.stringValue)
        timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(list.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let deadline = Date().addingTimeInterval(10)
        var shown = false
        while !shown && Date() < deadline {
            if let event = list.next(), event.data.contains(runID) && event.data.contains("badge succeeded") { shown = true }
        }
        #expect(shown, "the list's stream never showed the run that created the folder")
        withExtendedLifetime(waiting) {}
        #expect(try await server.stop() == 143)
    }

    /// Under /api every answer is JSON, the HTTP server's own refusals included: 405, 413, 421,
    /// 401, and 400 for a malformed path. Before, these were plain text. Elsewhere they stay text.
    @Test func theServersOwnRefusalsUnderApiAreJSON() async throws {
        let dir = TempDir()
        let (state, _) = try await Self.finishedRun(dir)
        let token = "s3cr3t-token-0123456789abcdef"
        let file = dir.write("token", token + "\n")
        chmod(file, 0o600)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--token-file", file, "--state-dir", state], dir: dir,
                                                  token: token)
        let port = server.port
        let host = "Host: 127.0.0.1:\(port)\r\n"
        let auth = "Authorization: Bearer \(token)\r\n"
        let cases: [(String, Int)] = [
            ("POST /api/runs HTTP/1.1\r\n\(host)\(auth)Content-Length: 0\r\n\r\n", 405),
            ("GET /api/runs HTTP/1.1\r\n\(host)\(auth)Content-Length: 5\r\n\r\nhello", 413),
            ("GET /api/runs HTTP/1.1\r\nHost: evil.example:\(port)\r\n\(auth)\r\n", 421),
            ("GET /api/runs/%zz HTTP/1.1\r\n\(host)\(auth)\r\n", 400),
            ("GET /api/runs?status=%zz HTTP/1.1\r\n\(host)\(auth)\r\n", 400),
            ("GET /api/runs HTTP/1.1\r\n\(host)\r\n", 401),
        ]
        for (raw, status) in cases {
            let response = try HTTPClient.request(port: port, raw)
            let line = String(raw.prefix { $0 != "\r" })
            #expect(response.status == status, "\(line)")
            #expect(response.header("Content-Type") == "application/json", "\(line)")
            let body = try? StrictJSONParser.parse(Array(response.body.utf8)).toValue()
            #expect(body?["error"]?["status"]?.intValue == status, "\(line): \(response.body)")
            #expect(body?["error"]?["message"]?.stringValue?.isEmpty == false, "\(line)")
            #expect(response.header("Content-Security-Policy") == Self.csp, "\(line)")
        }
        let post = try HTTPClient.request(port: port, "POST /api/runs HTTP/1.1\r\n\(host)\(auth)\r\n")
        #expect(post.header("Allow") == "GET, HEAD")
        #expect(try HTTPClient.request(port: port, "GET /api/runs HTTP/1.1\r\n\(host)\r\n").header("WWW-Authenticate") == "Bearer")
        // Outside /api, the server's refusals stay plain text.
        let page = try HTTPClient.request(port: port, "POST / HTTP/1.1\r\n\(host)\(auth)\r\n")
        #expect(page.status == 405 && page.header("Content-Type") == "text/plain; charset=utf-8")
        #expect(try await server.stop() == 143)
    }

    /// Numbers are plain digits: `--listen 127.0.0.1:+0` is exit 2 (before, it listened on port
    /// 0; `:+80` bound port 80), and `after`, `Last-Event-ID` and `limit` with a sign or a leading
    /// zero are 400 (before, `+10` and `00010` meant 10).
    @Test func numbersArePlainDigits() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.finishedRun(dir)
        for bad in ["127.0.0.1:+0", "127.0.0.1:07070", "127.0.0.1: 7070", "[::1]:+0"] {
            let result = await runCLI(["serve", "--listen", bad, "--state-dir", state], in: dir.path, timeout: .seconds(10))
            #expect(result.status == 2, "--listen \(bad): \(result.stderr)")
            #expect(result.stderr.contains("--listen needs ADDR:PORT with a port from 0 to 65535"), "--listen \(bad)")
            #expect(result.stdout.isEmpty, "--listen \(bad)")
        }
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        for bad in ["+10", "00010", "010", "+0", "00"] {
            #expect(try Self.head(port: server.port, "/runs/\(runID)/events", headers: ["Last-Event-ID: \(bad)"]).status == 400,
                    "Last-Event-ID: \(bad)")
            let escaped = bad.replacingOccurrences(of: "+", with: "%2B")
            #expect(try Self.head(port: server.port, "/runs/\(runID)/events?after=\(escaped)").status == 400, "after=\(bad)")
            #expect(try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events?after=\(escaped)").status == 400,
                    "after=\(bad)")
            #expect(try HTTPClient.get(port: server.port, path: "/api/runs?limit=\(escaped)").status == 400, "limit=\(bad)")
        }
        // Plain numbers keep working, 0 included.
        #expect(try Self.head(port: server.port, "/runs/\(runID)/events", headers: ["Last-Event-ID: 0"]).status == 200)
        let after = try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events?after=10")
        #expect(after.status == 200)
        #expect(try HTTPClient.get(port: server.port, path: "/api/runs?limit=10").status == 200)
        #expect(try await server.stop() == 143)
    }
}
