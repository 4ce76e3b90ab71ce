import Agents
import Foundation
import Monitor
import MonitorHTTP
import Orchestration

/// `serve [--listen ADDR:PORT] [--token-file F]`: the live web monitor of a state folder (SPEC §8).
struct ServeCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "serve", arguments: "", abstract: "Live web monitor of the state folder: runs, run pages, agents (read-only).",
        discussion: """
        Serves a read-only web monitor of the state folder and prints its URL on the first line: \
        the runs list (live status and progress, filters by status and plan), each run's page \
        (the Gantt, DAG and step table of 'report --html', updated as events arrive, with the \
        running steps' elapsed time and the tails of their stdout and stderr), the agents session, \
        and JSON at /api/runs, /api/runs/RUN_ID and /api/agents. Pages follow the state through \
        Server-Sent Events; the engines writing the state are not slowed.
        """,
        sections: [
            OptionSection("Options:", [
                .single("--listen", "ADDR:PORT", """
                    Where to listen (default 127.0.0.1:7070; PORT 0 picks a free one). An address other than \
                    loopback needs --token-file.
                    """),
                .single("--token-file", "F", """
                    A file holding the token (16 characters or more, readable by its owner only) every request \
                    must carry: 'Authorization: Bearer TOKEN', or '?token=TOKEN' once (the page keeps it in an \
                    HttpOnly cookie).
                    """),
                .integer("--max-connections", "N", 1...10_000, "Open connections at most (default 64; 503 beyond)."),
                .single("--header-timeout", "SEC", "Time a client has to send a request head (default 10)."),
                .single("--idle-timeout", "SEC", "Time a kept-alive connection may idle (default 60)."),
            ]),
            CommonOptions.section,
        ],
        epilogue: "Exit codes: 0 stopped, 2 bad arguments or address in use, 130/143 stopped by SIGINT/SIGTERM.")

    let configuration: HTTPServer.Configuration
    let common: CommonOptions

    init(parsing arguments: ParsedArguments) throws(EngineError) {
        _ = try arguments.positionals(count: 0) { "serve takes no positional argument, got \"\($0[0])\"" }
        common = try CommonOptions(arguments)
        let (host, port) = try Self.parseListen(arguments.value("--listen") ?? "127.0.0.1:7070")
        var configuration = HTTPServer.Configuration(host: host, port: port)
        let loopback: Bool
        do { loopback = try HTTPServer.isLoopback(host: host) } catch { throw usage("--listen: \(error.message)") }
        if let file = arguments.value("--token-file") {
            configuration.token = try Self.readToken(file)
        } else if !loopback {
            throw usage("--listen \(host) is not a loopback address: it needs --token-file F (the token every request must carry)")
        }
        if let count = try arguments.integer("--max-connections") { configuration.maxConnections = count }
        if let seconds = try Self.seconds(arguments, "--header-timeout") { configuration.headerTimeout = seconds }
        if let seconds = try Self.seconds(arguments, "--idle-timeout") { configuration.idleTimeout = seconds }
        self.configuration = configuration
    }

    /// `HOST:PORT` or `[V6]:PORT`.
    static func parseListen(_ text: String) throws(EngineError) -> (String, UInt16) {
        guard let colon = text.lastIndex(of: ":") else {
            throw usage("--listen needs ADDR:PORT (e.g. 127.0.0.1:7070), not \"\(text)\"")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = UInt16(plainDecimal: text[text.index(after: colon)...]) else {
            throw usage("--listen needs ADDR:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:7070), not \"\(text)\"")
        }
        return (host, port)
    }

    static func seconds(_ arguments: ParsedArguments, _ option: String) throws(EngineError) -> Duration? {
        guard let text = arguments.value(option) else { return nil }
        guard let value = Double(text), value.isFinite, value > 0, value <= 86_400 else {
            throw usage("option \(option) needs a number of seconds above 0 and at most 86400, not \"\(text)\"")
        }
        return .milliseconds(Int64(value * 1000))
    }

    /// The token in a file: trimmed, 16 characters or more, the file readable by its owner only.
    static func readToken(_ path: String) throws(EngineError) -> String {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
              let data = FileManager.default.contents(atPath: path) else {
            throw usage("cannot read the token file \(path)")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw usage("the token file \(path) is readable by others; make it private (chmod 600 \(path))")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= 16, token.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 && $0 != ";" && $0 != "," }) else {
            throw usage("the token in \(path) must be 16 or more printable ASCII characters without spaces, ';' or ','")
        }
        return token
    }

    func run() async throws(EngineError) -> Int32 {
        // Read-only: a missing folder is not created. As 'runs list' lists no runs for it, the
        // monitor shows an empty history and follows the folder once an engine creates it.
        let directory: StateDirectory
        var waiting = false
        do {
            directory = try StateDirectory(path: common.stateDirectory, creating: false)
        } catch let error as EngineError where error.code == .unknownReference {
            directory = .awaited(path: common.stateDirectory)
            waiting = true
        } catch {
            throw EngineError(error)
        }
        let statePath = directory.path
        let service = MonitorService(directory: directory) {
            do {
                return .success(try ProjectStatus.load(stateDirectory: statePath).json)
            } catch let error as OrchestratorError where error.code == .noSession {
                return .success(nil)
            } catch {
                return .failure(MonitorError("the agents session cannot be read: \(error)"))
            }
        }
        // Each connection is a descriptor: --max-connections may ask for more than the soft limit.
        LocalProcess.raiseOpenFilesLimit()
        var configuration = self.configuration
        configuration.refusal = { path, status, message in MonitorService.refusal(path: path, status: status, message: message) }
        let server: HTTPServer
        do {
            server = try HTTPServer(configuration: configuration) { request in service.handle(request) }
        } catch {
            throw usage(error.message)
        }
        let signals = SignalStopSource()
        defer { signals.finish() }
        service.start()
        server.start()
        StandardStreams.print(server.url)
        let wildcard = server.urlHost == configuration.host ? "" : "; listening on every address (\(configuration.host))"
        StandardStreams.printError("omnibase-agents serve: monitoring \(statePath) read-only"
            + (waiting ? " (no such folder yet: the list fills in when a run creates it)" : "")
            + (configuration.token == nil ? "" : " (token required)") + wildcard + "; Ctrl-C stops\n")
        var reason = StopReason.terminate
        for await request in signals.requests {
            reason = request
            break
        }
        server.stop()
        service.stop()
        return reason == .interrupt ? 130 : 143
    }
}
