import Foundation
import Glibc
import Testing
@testable import Monitor
@testable import Orchestration

/// `serve`: the live monitor over real sockets against the real CLI binary: its pages and JSON,
/// every limit and refusal of the HTTP server, the token, signals, and event streams by `seq`.
@Suite("serve: the live monitor over HTTP", .serialized, .timeLimit(.minutes(5)))
struct ServeTests {
    /// A finished run (succeeded) with a succeeded and a failed non-critical step.
    static func finishedRun(_ dir: TempDir) async throws -> (state: String, runID: String) {
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([
            stepJSON("fetch", "echo 'fetched <b>3</b> files'; echo 'warn: slow' >&2"),
            stepJSON("lint", "echo 'lint: <script>alert(1)</script>' >&2; exit 3", deps: ["fetch"],
                     extra: "\"critical\": false"),
        ], id: "PLAN-SERVE"))
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(run.status == 0, "\(run.stderr)")
        return (state, try #require(try run.json()["run_id"]?.stringValue))
    }

    static let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
    static func cpuSeconds(of pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
        // After the name: state is field 3, utime 14 and stime 15 (1-based, in clock ticks).
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Connections beyond the descriptors the server may hold wait in the listen queue, and the
    /// server waits for a descriptor to come free. Before, each `accept` failed with EMFILE while
    /// the pending connection kept the socket readable: the loop spun at full CPU (2.0 s of CPU
    /// in 2 s) until a connection closed. Then the server answers as before.
    @Test func connectionsBeyondItsDescriptorsDoNotSpinTheServer() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir,
                                                  openFilesLimit: 32)
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        for _ in 0..<60 { sockets.append(try HTTPClient.connect(port: server.port)) }
        let before = try Self.cpuSeconds(of: server.pid)
        try await Task.sleep(for: .seconds(1))
        let used = try Self.cpuSeconds(of: server.pid) - before
        #expect(used < 0.5, "the server used \(used) s of CPU in 1 s with connections it cannot accept")
        // It keeps 16 of its 32 free (one more for a moment after an accept it then refuses): a
        // process holding all of them can be crashed by Swift's thread pool, which opens
        // /proc/<tid>/stat to check its workers. Before, it held all 32.
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(server.pid)/fd").count
        #expect(open <= 32 - 16 + 1, "the server holds \(open) of its 32 descriptors")
        for fd in sockets { close(fd) }
        sockets.removeAll()
        let answer = try HTTPClient.get(port: server.port, path: "/api/monitor")
        #expect(answer.status == 200)
        #expect(try await server.stop() == 143)
    }

    @Test func servesPagesJSONAndAssetsWithStrictHeaders() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.finishedRun(dir)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        #expect(server.url == "http://127.0.0.1:\(server.port)/")
        #expect(server.port != 0, "port 0 picks a free port and the URL names it")

        let list = try HTTPClient.get(port: server.port, path: "/")
        #expect(list.status == 200)
        #expect(list.header("Content-Security-Policy") == Self.csp)
        #expect(list.header("X-Content-Type-Options") == "nosniff")
        #expect(list.header("Content-Type") == "text/html; charset=utf-8")
        #expect(!list.headers.contains { $0.0.lowercased().hasPrefix("access-control-") }, "no CORS")
        #expect(list.body.contains("href=\"/runs/\(runID)\""))
        #expect(list.body.contains("<span class=\"badge succeeded\">succeeded</span>"))
        #expect(list.body.contains("<span class=\"count failed\">1 failed</span>"))
        #expect(list.body.contains("2/2 (100%)"))
        #expect(!list.body.contains("<script>") && !list.body.contains("style=\""), "no inline script or style")

        let page = try HTTPClient.get(port: server.port, path: "/runs/\(runID)")
        #expect(page.status == 200)
        #expect(page.body.contains("id=\"step-fetch\"") && page.body.contains("id=\"step-lint\""))
        #expect(page.body.contains("lint: &lt;script&gt;alert(1)&lt;/script&gt;"), "stderr tails are escaped")
        #expect(page.body.contains("fetched &lt;b&gt;3&lt;/b&gt; files"), "stdout tails too")
        #expect(page.body.contains("<rect class=\"node failed\""), "the report's DAG")
        #expect(page.body.contains("<rect class=\"attempt succeeded\""), "the report's Gantt")
        #expect(page.body.contains("data-stream=\"/runs/\(runID)/events?after="))
        #expect(!page.body.contains("<script>") && !page.body.contains("style=\""))

        // The JSON endpoints have the shapes of `runs list` and `runs show --format json`.
        let cliList = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
        let apiList = try HTTPClient.get(port: server.port, path: "/api/runs")
        #expect(apiList.header("Content-Type") == "application/json")
        #expect(try StrictJSONParser.parse(Array(apiList.body.utf8)).toValue() == (try cliList.json()))
        let cliShow = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path)
        let apiShow = try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)")
        #expect(try StrictJSONParser.parse(Array(apiShow.body.utf8)).toValue() == (try cliShow.json()))
        let filtered = try HTTPClient.get(port: server.port, path: "/api/runs?status=failed")
        #expect(filtered.body.contains("\"runs\": []"))
        let byPlan = try HTTPClient.get(port: server.port, path: "/?plan=OTHER")
        #expect(byPlan.status == 200 && !byPlan.body.contains(runID))
        let badStatus = try HTTPClient.get(port: server.port, path: "/?status=bogus")
        #expect(badStatus.status == 400)
        let events = try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events?after=2")
        let parsed = try StrictJSONParser.parse(Array(events.body.utf8)).toValue()
        #expect(parsed["events"]?.arrayValue?.first?["seq"]?.intValue == 3)

        // Fixed resources at fixed routes.
        let css = try HTTPClient.get(port: server.port, path: "/assets/monitor.css")
        #expect(css.status == 200 && css.header("Content-Type") == "text/css; charset=utf-8")
        let script = try HTTPClient.get(port: server.port, path: "/assets/monitor.js")
        #expect(script.status == 200 && script.header("Content-Type") == "text/javascript; charset=utf-8")
        #expect(script.body.contains("EventSource"))
        let head = try HTTPClient.get(port: server.port, path: "/", method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty && Int(head.header("Content-Length") ?? "") == list.body.utf8.count)

        // Nothing is served by path: traversal and unknown routes are 404.
        for path in ["/../runs.db", "/runs.db", "/runs/../runs.db", "/runs/..%2Fruns.db", "/assets/../runs.db",
                     "/assets/monitor.css/../../runs.db", "/%2e%2e/runs.db", "/runs/\(runID)/logs/fetch.1.out", "/nope",
                     "/runs/r-missing", "/api/runs/r-missing", "/runs/", "/api"] {
            let response = try HTTPClient.get(port: server.port, path: path)
            #expect(response.status == 404, "\(path)")
            #expect(!response.body.contains("SQLite format"), "\(path)")
            #expect(response.header("Content-Security-Policy") == Self.csp, "\(path)")
        }
        #expect(try await server.stop(SIGTERM) == 143)
    }

    /// Under /api every answer is JSON, errors included (a script reading the API never gets a
    /// page): unknown runs, bad filters, and a history that cannot be read.
    @Test func apiErrorsAreJSON() async throws {
        let dir = TempDir()
        let (state, _) = try await Self.finishedRun(dir)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        func error(_ path: String) throws -> (status: Int, type: String?, message: String?) {
            let response = try HTTPClient.get(port: server.port, path: path)
            let body = try StrictJSONParser.parse(Array(response.body.utf8)).toValue()
            let inner = body["error"]
            #expect(inner?["status"]?.intValue == response.status, "\(path)")
            return (response.status, response.header("Content-Type"), inner?["message"]?.stringValue)
        }
        let missing = try error("/api/runs/r-missing")
        #expect(missing.status == 404 && missing.type == "application/json")
        #expect(missing.message?.contains("no run r-missing") == true)
        #expect(try error("/api/nope").status == 404)
        #expect(try error("/api/runs?status=bogus").status == 400)
        #expect(try error("/api/runs/r-missing/events").status == 404)
        // Pages keep answering with pages.
        let page = try HTTPClient.get(port: server.port, path: "/runs/r-missing")
        #expect(page.status == 404 && page.header("Content-Type") == "text/html; charset=utf-8")
        // A damaged history: 500 with the reason, as JSON.
        let database = state + "/runs.db"
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: database))
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        let damaged = try error("/api/runs")
        #expect(damaged.status == 500 && damaged.type == "application/json", "\(damaged)")
        #expect(damaged.message?.isEmpty == false)
        #expect(try await server.stop(SIGTERM) == 143)
    }

    @Test func refusesWhatItDoesNotServeAndKeepsGoing() async throws {
        let dir = TempDir()
        let (state, _) = try await Self.finishedRun(dir)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        let port = server.port
        let host = "Host: 127.0.0.1:\(port)\r\n"
        func status(_ raw: String) throws -> HTTPClient.Response { try HTTPClient.request(port: port, raw) }

        let post = try status("POST / HTTP/1.1\r\n\(host)Content-Length: 0\r\n\r\n")
        #expect(post.status == 405)
        #expect(post.header("Allow") == "GET, HEAD")
        for method in ["PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"] {
            #expect(try status("\(method) / HTTP/1.1\r\n\(host)\r\n").status == 405, "\(method)")
        }
        #expect(try status("GET / HTTP/1.1\r\n\(host)Content-Length: 5\r\n\r\nhello").status == 413)
        #expect(try status("GET / HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").status == 413)
        #expect(try status("POST / HTTP/1.1\r\n\(host)Content-Length: 100000\r\n\r\n" + String(repeating: "x", count: 100_000)).status == 405)
        // Oversized heads: many fields, or one long request line.
        let fields = (0..<400).map { "X-Filler-\($0): \(String(repeating: "y", count: 40))\r\n" }.joined()
        #expect(try status("GET / HTTP/1.1\r\n\(host)\(fields)\r\n").status == 431)
        #expect(try status("GET /\(String(repeating: "a", count: 20_000)) HTTP/1.1\r\n\(host)\r\n").status == 431)
        // DNS rebinding: another name than the listening address.
        for bad in ["evil.example:\(port)", "127.0.0.1", "127.0.0.1:1", "localhost.evil.example:\(port)", "[::1]:\(port)"] {
            let response = try status("GET / HTTP/1.1\r\nHost: \(bad)\r\n\r\n")
            #expect(response.status == 421, "\(bad)")
            #expect(!response.body.contains("<table"), "\(bad)")
        }
        #expect(try status("GET / HTTP/1.1\r\nHost: localhost:\(port)\r\n\r\n").status == 200, "localhost names loopback")
        #expect(try status("GET / HTTP/1.1\r\nHost: LOCALHOST:\(port)\r\nConnection: close\r\n\r\n").status == 200)
        // Malformed requests.
        #expect(try status("GET / HTTP/1.1\r\n\r\n").status == 400, "HTTP/1.1 without Host")
        #expect(try status("GET / HTTP/1.1\r\n\(host)\(host)\r\n").status == 400, "two Host fields")
        #expect(try status("GARBAGE\r\n\r\n").status == 400)
        #expect(try status("GET / HTTP/2.0\r\n\(host)\r\n").status == 505)
        #expect(try status("GET http://evil.example/ HTTP/1.1\r\n\(host)\r\n").status == 400)
        #expect(try status("GET /%zz HTTP/1.1\r\n\(host)\r\n").status == 400)
        #expect(try status("GET / HTTP/1.1\r\n\(host) folded\r\n\r\n").status == 400)
        #expect(try status("GET / HTTP/1.1\r\n\(host)Bad Field: x\r\n\r\n").status == 400)

        // Keep-alive: two requests on one connection.
        let fd = try HTTPClient.connect(port: port)
        HTTPClient.write(fd, "GET /assets/monitor.css HTTP/1.1\r\n\(host)\r\n")
        #expect(try HTTPClient.readResponse(fd).status == 200)
        HTTPClient.write(fd, "GET /nope HTTP/1.1\r\n\(host)\r\n")
        #expect(try HTTPClient.readResponse(fd).status == 404)
        close(fd)

        // After all that, the server still answers.
        #expect(try HTTPClient.get(port: port, path: "/").status == 200)
        #expect(try await server.stop(SIGINT) == 130)
    }

    @Test func capsConnectionsAndDropsSlowAndIdleClients() async throws {
        let dir = TempDir()
        let (state, _) = try await Self.finishedRun(dir)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state, "--max-connections", "3",
                                                   "--header-timeout", "1", "--idle-timeout", "1"], dir: dir)
        let port = server.port
        // Two slow clients: a head begun and never finished, and one trickled a byte at a time.
        let slow = try HTTPClient.connect(port: port)
        HTTPClient.write(slow, "GET / HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n")
        let trickle = try HTTPClient.connect(port: port)
        let started = Date()
        // While they hold two of the three slots, another client is served.
        let served = try HTTPClient.get(port: port, path: "/")
        #expect(served.status == 200)
        // A third held slot, then a fourth connection is over the cap: 503.
        let third = try HTTPClient.connect(port: port)
        HTTPClient.write(third, "GET")
        let over = try HTTPClient.connect(port: port)
        let refused = try HTTPClient.readResponse(over)
        close(over)
        #expect(refused.status == 503)
        // The trickling client sends one byte every 200 ms; the header timeout counts from its
        // first byte, so it is cut off long before its head could end.
        let request = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nX-Slow: \(String(repeating: "z", count: 200))\r\n\r\n".utf8)
        var sent = 0
        var cutOff = false
        for byte in request {
            let count = [byte].withUnsafeBytes { Glibc.send(trickle, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { cutOff = true; break }
            sent += 1
            var probe = [UInt8](repeating: 0, count: 512)
            let got = probe.withUnsafeMutableBytes { recv(trickle, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if got >= 0 && (got == 0 || String(decoding: probe[0..<got], as: UTF8.self).hasPrefix("HTTP/1.1 408")) {
                cutOff = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(cutOff, "the trickling client was never cut off (sent \(sent) of \(request.count) bytes)")
        #expect(sent < request.count)
        #expect(elapsed >= 0.9, "cut off before the header timeout")
        // The half-sent head gets 408 and the connection closes.
        let (bytes, closed) = HTTPClient.read(slow)
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 408"))
        #expect(closed)
        // A connection that never sent a full head is closed too, and the slots are free again.
        _ = HTTPClient.read(third)
        close(slow)
        close(trickle)
        close(third)
        // An idle kept-alive connection is closed after the idle timeout.
        let idle = try HTTPClient.connect(port: port)
        HTTPClient.write(idle, "GET /assets/monitor.js HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n")
        #expect(try HTTPClient.readResponse(idle).status == 200)
        let idleStart = Date()
        let (rest, idleClosed) = HTTPClient.read(idle)
        #expect(rest.isEmpty && idleClosed, "the idle connection was closed")
        #expect(Date().timeIntervalSince(idleStart) >= 0.9)
        close(idle)
        #expect(try HTTPClient.get(port: port, path: "/").status == 200)
        #expect(try await server.stop() == 143)
    }

    @Test func aNonLoopbackAddressNeedsATokenAndEveryRequestCarriesIt() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.finishedRun(dir)
        let noToken = await runCLI(["serve", "--listen", "0.0.0.0:0", "--state-dir", state], in: dir.path)
        #expect(noToken.status == 2)
        #expect(noToken.stderr.contains("needs --token-file"))
        #expect(noToken.stdout.isEmpty)
        let token = "s3cr3t-token-0123456789abcdef"
        let open = dir.write("open-token", token + "\n")
        chmod(open, 0o644)
        let readable = await runCLI(["serve", "--listen", "0.0.0.0:0", "--token-file", open, "--state-dir", state], in: dir.path)
        #expect(readable.status == 2)
        #expect(readable.stderr.contains("chmod 600"))
        let short = dir.write("short-token", "abc\n")
        chmod(short, 0o600)
        #expect(await runCLI(["serve", "--listen", "0.0.0.0:0", "--token-file", short, "--state-dir", state], in: dir.path).status == 2)
        for bad in ["nohost", "example.com:80", "127.0.0.1:99999", "127.0.0.1:x"] {
            #expect(await runCLI(["serve", "--listen", bad, "--state-dir", state], in: dir.path).status == 2, "\(bad)")
        }
        #expect(await runCLI(["serve", "extra", "--state-dir", state], in: dir.path).status == 2)

        let file = dir.write("token", token + "\n")
        chmod(file, 0o600)
        let server = try await ServeProcess.start(["--listen", "0.0.0.0:0", "--token-file", file, "--state-dir", state], dir: dir,
                                                  token: token)
        let port = server.port
        #expect(try HTTPClient.get(port: port, path: "/").status == 401)
        #expect(try HTTPClient.get(port: port, path: "/api/runs").status == 401)
        #expect(try HTTPClient.get(port: port, path: "/assets/monitor.js").status == 401)
        #expect(try HTTPClient.get(port: port, path: "/", headers: ["Authorization: Bearer wrong-token-0123456789abcdef"]).status == 401)
        #expect(try HTTPClient.get(port: port, path: "/", headers: ["Authorization: Bearer \(token)x"]).status == 401)
        #expect(try HTTPClient.get(port: port, path: "/?token=\(String(token.dropLast()))").status == 401)
        #expect(try HTTPClient.get(port: port, path: "/", headers: ["Cookie: omnibase_token=nope"]).status == 401)
        let bearer = try HTTPClient.get(port: port, path: "/runs/\(runID)", headers: ["Authorization: Bearer \(token)"])
        #expect(bearer.status == 200)
        #expect(bearer.header("Set-Cookie") == nil)
        let query = try HTTPClient.get(port: port, path: "/?token=\(token)")
        #expect(query.status == 200)
        #expect(query.header("Set-Cookie") == "omnibase_token=\(token); Path=/; HttpOnly; SameSite=Strict")
        let cookie = try HTTPClient.get(port: port, path: "/api/runs/\(runID)", headers: ["Cookie: a=b; omnibase_token=\(token)"])
        #expect(cookie.status == 200)
        // The token does not replace the Host check.
        #expect(try HTTPClient.request(port: port, "GET / HTTP/1.1\r\nHost: evil.example:\(port)\r\nAuthorization: Bearer \(token)\r\n\r\n")
            .status == 421)
        #expect(try await server.stop(SIGINT) == 130)
    }

    /// A plan whose steps wait for marker files the test creates, so progress is controlled.
    static func gatedPlan(_ dir: TempDir, steps: [String] = ["a", "b", "c"]) -> String {
        var json: [String] = []
        for (index, id) in steps.enumerated() {
            json.append(stepJSON(id, "echo \"\(id) started\"; echo \"\(id) waits\" >&2; echo ready > \"$D/\(id).running\"; "
                                    + "while [ ! -e \"$D/\(id).go\" ]; do sleep 0.05; done; echo \"\(id) done\"",
                                 deps: index == 0 ? [] : [steps[index - 1]], extra: "\"env\": {\"D\": \"\(dir.path)\"}"))
        }
        return dir.write("gated.json", planJSON(json, id: "PLAN-GATED"))
    }

    @Test func eventStreamsCatchUpBySeqAndFollowARun() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = Self.gatedPlan(dir)
        let path = dir.path
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: path, timeout: .seconds(120))
        _ = try await waitForFile(dir.path + "/a.running", seconds: 30)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        let runs = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/runs").body.utf8)).toValue()
        let runID = try #require(runs["runs"]?.arrayValue?.first?["run_id"]?.stringValue)
        // Step a may start before the engine's commit of its start lands (the run is still
        // pending, with no event): wait for that commit, so that there is something to catch up.
        for _ in 0..<400 {
            let stored = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events").body.utf8))
                .toValue()["events"]?.arrayValue ?? []
            if stored.contains(where: { $0["type"]?.stringValue == "step_started" }) { break }
            try await Task.sleep(for: .milliseconds(25))
        }

        // A follower from the start gets every event so far, in order, then the page.
        let first = try EventStreamClient(port: server.port, path: "/runs/\(runID)/events")
        let catchUp = try #require(first.events { $0.name == "render" })
        #expect(first.head?.status == 200)
        #expect(first.head?.header("Content-Type") == "text/event-stream; charset=utf-8")
        let ids = catchUp.compactMap { $0.id.flatMap(Int.init) }
        #expect(ids == Array(1...ids.count), "every event by seq: \(ids)")
        #expect(catchUp.contains { $0.data.contains("\"type\":\"step_started\",\"step_id\":\"a\"") })
        #expect(catchUp.last?.data.contains("a waits") == true, "the running step's stderr tail")
        // The list follows too.
        let list = try EventStreamClient(port: server.port, path: "/events")
        let listed = try #require(list.events { $0.name == "runs" })
        #expect(listed.last?.data.contains("0/3 (0%)") == true)

        // Step a finishes: its events arrive, then the page shows it succeeded.
        _ = FileManager.default.createFile(atPath: dir.path + "/a.go", contents: nil)
        let progress = try #require(first.events { $0.data.contains("\"type\":\"step_started\",\"step_id\":\"b\"") })
        #expect(progress.contains { $0.data.contains("\"type\":\"step_succeeded\",\"step_id\":\"a\"") })
        let seqs = progress.compactMap { $0.id.flatMap(Int.init) }
        #expect(seqs.first == ids.last! + 1, "no event skipped or repeated")
        let page = try #require(first.events { $0.name == "render" && $0.data.contains("<tr class=\"step running unfinished\" id=\"step-b\">") })
        #expect(page.last?.data.contains("<tr class=\"step succeeded\" id=\"step-a\">") == true)
        #expect(try #require(list.events { $0.data.contains("1/3 (33%)") }).isEmpty == false)

        // A page opened now (Last-Event-ID = the last event it saw) gets only what came after.
        let lastSeen = seqs.last!
        let second = try EventStreamClient(port: server.port, path: "/runs/\(runID)/events", headers: ["Last-Event-ID: \(lastSeen - 1)"])
        let resumed = try #require(second.events { $0.name == "render" })
        #expect(resumed.compactMap { $0.id.flatMap(Int.init) } == [lastSeen])
        let upToDate = try EventStreamClient(port: server.port, path: "/runs/\(runID)/events?after=\(lastSeen)")

        // The rest of the run: both followers see the end.
        _ = FileManager.default.createFile(atPath: dir.path + "/b.go", contents: nil)
        _ = FileManager.default.createFile(atPath: dir.path + "/c.go", contents: nil)
        let result = await run
        #expect(result.status == 0, "\(result.stderr)")
        for client in [first, second, upToDate] {
            let tail = try #require(client.events { $0.name == "end" })
            #expect(tail.last?.data == "succeeded")
            #expect(tail.contains { $0.data.contains("\"type\":\"run_finished\"") })
            #expect(client.next() == nil && client.closedByServer, "the stream of a finished run ends")
        }
        let finalList = try #require(list.events { $0.data.contains("3/3 (100%)") })
        #expect(finalList.last?.data.contains("badge succeeded") == true)
        #expect(try await server.stop() == 143)
    }
}

extension ServeTests {
    @Test func aFollowerOfARunNotStoredYetWaitsForIt() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        let runID = RunID.make()
        // Several followers wait together: each gets every event once, in order, from the first.
        let followers = try (0..<4).map { _ in try EventStreamClient(port: server.port, path: "/runs/\(runID)/events?wait=1") }
        var waited = 0
        while try ServeBrowserTests.followers(server) < followers.count && waited < 400 {
            try await Task.sleep(for: .milliseconds(50))
            waited += 1
        }
        let plan = dir.write("p.json", planJSON((0..<40).map { stepJSON("s\($0)", "true") }))
        let session = try RunSession(stateDirectory: state)
        let report = try await session.start(try PlanLoader.load(path: plan), runID: runID)
        #expect(report.status == .succeeded)
        for follower in followers {
            let events = try #require(follower.events { $0.name == "end" })
            #expect(events.compactMap { $0.id.flatMap(Int.init) } == Array(1...82), "every event once, in order, from the first")
            #expect(events.last?.data == "succeeded")
        }
        #expect(try await server.stop() == 143)
    }
}

extension ServeTests {
    /// The head of the answer to `GET path` (an event stream is not read to its end).
    static func head(port: UInt16, _ path: String, headers: [String] = []) throws -> HTTPClient.Response {
        let fd = try HTTPClient.connect(port: port, receiveTimeout: 5)
        defer { close(fd) }
        HTTPClient.write(fd, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n")
        return try HTTPClient.readResponse(fd, head: true)
    }

    /// The event stream of a run that is not stored is 404, as its page is; before, it was 200
    /// and a stream that nothing would ever end, so 64 of them filled `--max-connections` and
    /// every other client got 503. A follower that means to wait for a run asks with `wait=1`.
    @Test func theEventStreamOfAnUnknownRunIsNotFound() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.finishedRun(dir)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        let missing = try Self.head(port: server.port, "/runs/r-missing/events")
        #expect(missing.status == 404)
        if missing.status == 404 {
            #expect(try HTTPClient.get(port: server.port, path: "/runs/r-missing/events").body.contains("no run r-missing"))
        }
        #expect(try Self.head(port: server.port, "/runs/\(runID)/events").status == 200)
        let waiting = try Self.head(port: server.port, "/runs/r-missing/events?wait=1")
        #expect(waiting.status == 200 && waiting.header("Content-Type") == "text/event-stream; charset=utf-8")
        #expect(try await server.stop() == 143)
    }

    /// A bad `after` or `Last-Event-ID` (not a number, negative, beyond 2^63-1) is 400, as a bad
    /// filter is; before, it meant 0 and every event was sent again.
    @Test func aBadSeqIsABadRequest() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.finishedRun(dir)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        for bad in ["abc", "99999999999999999999", "-1", "1.5", "0x10"] {
            let api = try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events?after=\(bad)")
            #expect(api.status == 400 && api.header("Content-Type") == "application/json", "after=\(bad)")
            let body = try StrictJSONParser.parse(Array(api.body.utf8)).toValue()
            #expect(body["error"]?["message"]?.stringValue?.contains("after") == true, "\(api.body)")
            #expect(try Self.head(port: server.port, "/runs/\(runID)/events?after=\(bad)").status == 400, "after=\(bad)")
            #expect(try Self.head(port: server.port, "/runs/\(runID)/events", headers: ["Last-Event-ID: \(bad)"]).status == 400,
                    "Last-Event-ID: \(bad)")
        }
        // Good values keep working: from a seq, and absent or empty as from the start.
        let after2 = try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events?after=2")
        #expect(try StrictJSONParser.parse(Array(after2.body.utf8)).toValue()["events"]?.arrayValue?.first?["seq"]?.intValue == 3)
        let empty = try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events?after=")
        #expect(try StrictJSONParser.parse(Array(empty.body.utf8)).toValue()["events"]?.arrayValue?.first?["seq"]?.intValue == 1)
        let resumed = try EventStreamClient(port: server.port, path: "/runs/\(runID)/events?after=1", headers: ["Last-Event-ID: 2"])
        let events = try #require(resumed.events { $0.name == "end" })
        #expect(events.compactMap { $0.id.flatMap(Int.init) }.first == 3, "the header wins over the page's after")
        #expect(try await server.stop() == 143)
    }
}

/// `serve` in headless Chromium while a real plan runs: the runs list and the run page at
/// several moments, and the run page updated by its event stream alone. Chromium comes from
/// `.ci/run` (`apt-get install chromium`); without it these tests are skipped.
@Suite("serve: the live monitor in a browser", .serialized, .timeLimit(.minutes(5)))
struct ServeBrowserTests {
    static var hasChromium: Bool { ReportTests.tool("chromium") != nil || ReportTests.tool("chromium-browser") != nil }

    /// The DOM Chromium built for a page, its console checked.
    static func dom(_ url: String, in dir: TempDir, extra: [String] = []) async throws -> String {
        let browser = try await ReportTests.chromium(extra + ["--dump-dom", url], in: dir.path)
        #expect(browser.status == 0, "\(browser.stderr)")
        ReportTests.expectNoConsoleMessages(browser.stderr)
        return browser.stdout
    }

    /// How many streams the server feeds now.
    static func followers(_ server: ServeProcess) throws -> Int {
        let json = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/monitor").body.utf8)).toValue()
        return json["followers"]?.intValue ?? -1
    }

    @Test(.enabled(if: hasChromium, "chromium is not installed (apt-get install chromium): the browser checks are skipped"))
    func theRunsListAndTheRunPageFollowARunningPlan() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = ServeTests.gatedPlan(dir)
        let path = dir.path
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: path, timeout: .seconds(180))
        _ = try await waitForFile(dir.path + "/a.running", seconds: 30)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        let runs = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/runs").body.utf8)).toValue()
        let runID = try #require(runs["runs"]?.arrayValue?.first?["run_id"]?.stringValue)
        let runURL = server.url + "runs/" + runID

        // Moment 1: a runs, b and c wait.
        let list1 = try await Self.dom(server.url, in: dir)
        #expect(list1.contains("<span class=\"badge running\">running</span>"))
        #expect(list1.contains("0/3 (0%)"))
        let page1 = try await Self.dom(runURL, in: dir)
        #expect(page1.contains("<tr class=\"step running unfinished\" id=\"step-a\">"))
        #expect(page1.contains("<tr class=\"step pending unfinished\" id=\"step-b\">"))
        #expect(page1.contains("class=\"elapsed\" data-since="), "the running step's elapsed time")
        #expect(page1.contains("a started") && page1.contains("a waits"), "its stdout and stderr tails")
        #expect(page1.contains("Live: 0/3 steps done"))

        // Moment 2: a succeeded, b runs.
        _ = FileManager.default.createFile(atPath: dir.path + "/a.go", contents: nil)
        _ = try await waitForFile(dir.path + "/b.running", seconds: 30)
        let list2 = try await Self.dom(server.url, in: dir)
        #expect(list2.contains("1/3 (33%)"))
        let page2 = try await Self.dom(runURL, in: dir)
        #expect(page2.contains("<tr class=\"step succeeded\" id=\"step-a\">"))
        #expect(page2.contains("<tr class=\"step running unfinished\" id=\"step-b\">"))
        #expect(page2.contains("a done"))

        // The page, once open, follows the run through its event stream alone: opened while b
        // runs, it shows the end of the run that happens while it is open. (Chromium dumps the DOM
        // when its virtual time runs out, which waits for open requests: the script closes the
        // stream at the run's end.)
        async let live = ReportTests.chromium(["--virtual-time-budget=3000", "--dump-dom", runURL], in: path)
        var waited = 0
        while try Self.followers(server) < 1 && waited < 600 {
            try await Task.sleep(for: .milliseconds(50))
            waited += 1
        }
        #expect(try Self.followers(server) >= 1, "the page never connected its event stream")
        _ = FileManager.default.createFile(atPath: dir.path + "/b.go", contents: nil)
        _ = FileManager.default.createFile(atPath: dir.path + "/c.go", contents: nil)
        let result = await run
        #expect(result.status == 0, "\(result.stderr)")
        let followed = try await live
        #expect(followed.status == 0, "\(followed.stderr)")
        ReportTests.expectNoConsoleMessages(followed.stderr)
        let page3 = followed.stdout
        #expect(page3.contains("data-stream=\"/runs/\(runID)/events?after="), "the page was served mid-run")
        #expect(page3.contains("data-finished=\"true\""), "the stream said the run ended")
        #expect(page3.contains("class=\"conn done\">finished"))
        for step in ["a", "b", "c"] {
            #expect(page3.contains("<tr class=\"step succeeded\" id=\"step-\(step)\">"), "\(step)")
        }
        #expect(page3.contains("Finished: succeeded"))
        #expect(page3.contains("run_finished"), "the events arrived in the page's event log")
        #expect(page3.contains("<span class=\"badge succeeded\">succeeded</span>"))

        // Moment 3: the list shows the end.
        let list3 = try await Self.dom(server.url, in: dir)
        #expect(list3.contains("3/3 (100%)"))
        #expect(list3.contains("<span class=\"badge succeeded\">succeeded</span>"))

        // A screenshot of the finished run's page.
        let shot = dir.path + "/monitor.png"
        let screenshot = try await ReportTests.chromium(["--hide-scrollbars", "--window-size=1320,1200", "--screenshot=" + shot, runURL],
                                                        in: path)
        #expect(screenshot.status == 0, "\(screenshot.stderr)")
        ReportTests.expectNoConsoleMessages(screenshot.stderr)
        let png = try #require(FileManager.default.contents(atPath: shot))
        #expect(Array(png.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
        #expect(try await server.stop() == 143)
    }
}

/// The agents page, rendered from the JSON of `agents status` (the monitor reads the session
/// through `ProjectStatus.load`, read-only).
@Suite("serve: the agents page")
struct ServeAgentsPageTests {
    static let status = #"""
    {"project": "shop<x>", "session_id": "s-1", "status": "running", "live": true, "integration_branch": "integration",
     "repo": "/r", "started_at": "2026-12-06T01:00:00.000Z", "finished_at": null,
     "summary": {"total": 3, "pending": 0, "working": 1, "blocked": 1, "done": 1, "failed": 0, "stalled": 0},
     "tasks": [
       {"id": "api", "role": "backend", "title": "Build the <api>", "milestone": "m1", "state": "done", "phase": null,
        "iteration": 3, "branch": "agent/backend/api", "awaiting": null, "ci": {"status": "passed", "run_id": "r-ci-1", "log": null},
        "reason": null},
       {"id": "ui", "role": "frontend", "title": "UI", "milestone": "m1", "state": "blocked", "phase": "blocked",
        "iteration": 2, "branch": "agent/frontend/ui", "awaiting": ["deploy_ready"], "ci": null,
        "reason": "waiting for deploy_ready", "blocked_since": "2026-12-06T01:30:00.000Z"},
       {"id": "docs", "role": "writer", "title": "Docs", "milestone": "m2", "state": "blocked", "phase": "blocked",
        "iteration": 1, "branch": "agent/writer/docs", "awaiting": [], "ci": null, "reason": null}
     ],
     "milestones": [
       {"id": "m1", "title": "First", "state": "merged", "tasks": ["api", "ui"],
        "merge": {"branch": "integration", "commit": "0123456789abcdef0123", "merged_tasks": ["api"]}, "conflicts": [], "reason": null},
       {"id": "m2", "title": "Second", "state": "blocked", "tasks": ["docs"], "conflicts": ["README.md"], "reason": "merge conflict"}
     ],
     "events": {"count": 1, "recent": [{"seq": 1, "name": "deploy_ready"}]}}
    """#

    @Test func tasksWaitsAndMergesAreShownEscaped() throws {
        let json = try StrictJSONParser.parse(Array(Self.status.utf8)).toValue()
        let html = MonitorPages.agentsContent(.success(json))
        #expect(html.contains("Agents: shop&lt;x&gt;"))
        #expect(html.contains("Build the &lt;api&gt;") && !html.contains("<api>"))
        #expect(html.contains("<tr class=\"task cancelled\" id=\"task-ui\">"))
        #expect(html.contains("<span class=\"mono\">deploy_ready</span>"), "what the blocked task waits for")
        #expect(html.contains("2026-12-06T01:30:00.000Z") && html.contains("class=\"elapsed\" data-since=\"1796520600000\""),
                "since when, ticking")
        #expect(html.contains("any event for docs"), "an empty wait list waits for any event of the task")
        #expect(html.contains("merged into <span class=\"mono\">integration</span> at <span class=\"mono\">0123456789ab</span> (api)"))
        #expect(html.contains("conflicts: README.md"))
        #expect(html.contains("href=\"/runs/r-ci-1\""), "the CI run links to its run page")
        #expect(MonitorPages.agentsContent(.success(nil)).contains("No agents session"))
        #expect(MonitorPages.agentsContent(.failure(MonitorError("bad <db>"))).contains("bad &lt;db&gt;"))
    }

    @Test func theAgentsRoutesWithoutASession() async throws {
        let dir = TempDir()
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", dir.path + "/s"], dir: dir)
        let page = try HTTPClient.get(port: server.port, path: "/agents")
        #expect(page.status == 200 && page.body.contains("No agents session"))
        #expect(try HTTPClient.get(port: server.port, path: "/api/agents").status == 404)
        let list = try HTTPClient.get(port: server.port, path: "/")
        #expect(list.status == 200 && list.body.contains("No run history"), "an empty state folder is not an error")
        #expect(try await server.stop() == 143)
    }
}
