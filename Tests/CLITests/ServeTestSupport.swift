import Foundation
import Glibc
import Testing
@testable import Orchestration

/// A `serve` process of the CLI binary for a test: started with its stdout in a file, its URL
/// read from the first line, stopped with a signal (killed when the test ends without stopping it).
final class ServeProcess: @unchecked Sendable {
    // @unchecked: `task`, `url`, `port` and `pid` are set in `start` (`started`) before the
    // instance is shared and only read afterwards; every other property is a constant.
    let dir: TempDir
    let stdoutPath: String
    let stderrPath: String
    private(set) var task: Task<ProcessOutcome, Never>?
    private(set) var url = ""
    private(set) var port: UInt16 = 0
    private(set) var pid: Int32 = 0

    init(dir: TempDir) {
        self.dir = dir
        stdoutPath = dir.path + "/serve-\(UUID().uuidString).out"
        stderrPath = dir.path + "/serve-\(UUID().uuidString).err"
    }

    /// Starts `serve` with `arguments` and waits for its URL; with `openFilesLimit`, under that
    /// limit of open files (soft and hard: `ulimit -n`).
    static func start(_ arguments: [String], dir: TempDir, token: String? = nil,
                      openFilesLimit: Int? = nil) async throws -> ServeProcess {
        let process = ServeProcess(dir: dir)
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        environment["OMNIBASE_STATE_DIR"] = nil
        var command = cliPath
        var prefix: [String] = []
        if let openFilesLimit {
            command = "/bin/sh"
            prefix = ["-c", "ulimit -n \(openFilesLimit) && exec \"$0\" \"$@\"", cliPath]
        }
        let spec = ProcessSpec(command: command, arguments: prefix + ["serve"] + arguments, environment: environment,
                               workingDirectory: dir.path, stdoutPath: process.stdoutPath, stderrPath: process.stderrPath,
                               timeout: .seconds(600), killGrace: .seconds(2))
        process.task = Task { await LocalProcess.run(spec) }
        do {
            try await process.started(token: token)
        } catch {
            // A server that did not answer as expected (its pid unknown) is stopped here: the
            // task's cancellation tears its process group down.
            process.task?.cancel()
            _ = await process.task?.value
            throw error
        }
        return process
    }

    /// Reads the URL from the first line, opens it (its address, its Host) and learns the pid.
    private func started(token: String?) async throws {
        let line = try await waitForFile(stdoutPath, seconds: 30)
        url = String(line.split(separator: "\n")[0])
        let port = try #require(url.split(separator: ":").last.flatMap { UInt16($0.trimmingCharacters(in: CharacterSet(charactersIn: "/"))) })
        self.port = port
        // The URL it printed opens: its address, its Host.
        let authority = String(url.dropFirst("http://".count).dropLast())
        let colon = try #require(authority.lastIndex(of: ":"))
        var host = String(authority[..<colon])
        if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
        let auth = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        let response = try HTTPClient.request(host: host, port: port,
                                              "GET /api/monitor HTTP/1.1\r\nHost: \(authority)\r\n\(auth)Connection: close\r\n\r\n")
        let json = try StrictJSONParser.parse(Array(response.body.utf8)).toValue()
        pid = Int32(try #require(json["pid"]?.intValue))
    }

    deinit {
        // A test that failed before stopping the server leaves no process behind.
        if pid > 0, ServeProcessTable.isRunning(pid) { kill(pid, SIGKILL) }
    }

    /// Sends a signal and returns the exit status.
    func stop(_ signal: Int32 = SIGTERM) async throws -> Int32 {
        kill(pid, signal)
        return await exitStatus()
    }

    /// Waits for the process to end.
    func exitStatus() async -> Int32 {
        guard let outcome = await task?.value else { return -1 }
        switch outcome.termination {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        case .failedToStart: return -1
        }
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
}

enum ServeProcessTable {
    /// Whether a process exists and is not a zombie.
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)...].first != "Z"
    }
}

/// A blocking HTTP/1.1 client over a real socket, for tests that need to send exactly what
/// they mean (bad requests, slow heads, no body framing).
enum HTTPClient {
    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    /// A socket connected to `host` (an IPv4 or IPv6 literal) with a receive timeout, and a small
    /// receive buffer when `receiveBuffer` is given (set before connecting: the window it offers).
    static func connect(host: String = "127.0.0.1", port: UInt16, receiveTimeout: Double = 20,
                        receiveBuffer: Int32? = nil) throws -> Int32 {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        let status: Int32
        if v6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            try #require(inet_pton(AF_INET6, host, &address.sin6_addr) == 1)
            status = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            try #require(inet_pton(AF_INET, host, &address.sin_addr) == 1)
            status = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard status == 0 else {
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        var timeout = timeval(tv_sec: Int(receiveTimeout), tv_usec: Int((receiveTimeout - receiveTimeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return }
            done += count
        }
    }

    /// Reads until the peer closes, the timeout, or `until` says the bytes are enough.
    static func read(_ fd: Int32, until enough: ([UInt8]) -> Bool = { _ in false }) -> (bytes: [UInt8], closed: Bool) {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return (bytes, true) }
            if count < 0 {
                if errno == EINTR { continue }
                return (bytes, errno == ECONNRESET)
            }
            bytes += buffer[0..<count]
            if enough(bytes) { return (bytes, false) }
        }
    }

    /// One complete response (by Content-Length), or what arrived before the close.
    static func readResponse(_ fd: Int32, head: Bool = false) throws -> Response {
        let (bytes, _) = read(fd) { bytes in
            guard let response = parse(bytes) else { return false }
            if head { return true }
            guard let length = response.header("content-length").flatMap(Int.init) else { return false }
            return response.body.utf8.count >= length
        }
        return try #require(parse(bytes), "no HTTP response in \(String(decoding: bytes, as: UTF8.self))")
    }

    static func parse(_ bytes: [UInt8]) -> Response? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return Response(status: status, headers: headers, body: String(text[split.upperBound...]))
    }

    /// A request with `Connection: close`, answered and closed.
    static func request(host: String = "127.0.0.1", port: UInt16, _ raw: String, head: Bool = false) throws -> Response {
        let fd = try connect(host: host, port: port)
        defer { close(fd) }
        write(fd, raw)
        return try readResponse(fd, head: head)
    }

    /// `GET path` with the right Host.
    static func get(port: UInt16, path: String, headers: [String] = [], method: String = "GET") throws -> Response {
        let extra = headers.map { $0 + "\r\n" }.joined()
        return try request(port: port, "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\(extra)Connection: close\r\n\r\n",
                           head: method == "HEAD")
    }
}

/// An event-stream client: one connection, events read as they come.
final class EventStreamClient {
    struct Event {
        var id: String?
        var name: String
        var data: String
    }

    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var head: HTTPClient.Response?
    /// Whether the server closed the stream (rather than the read timing out).
    private(set) var closedByServer = false

    init(port: UInt16, path: String, headers: [String] = []) throws {
        fd = try HTTPClient.connect(port: port, receiveTimeout: 60)
        let extra = headers.map { $0 + "\r\n" }.joined()
        HTTPClient.write(fd, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n\(extra)\r\n")
    }

    deinit { close(fd) }

    /// The next event (comments and `retry:` skipped), or nil when the stream ended or stalled.
    func next() -> Event? {
        while true {
            if head == nil, let end = find(Array("\r\n\r\n".utf8)) {
                head = HTTPClient.parse(Array(buffer[0..<end + 4]))
                buffer.removeFirst(end + 4)
            }
            if head != nil, let end = find(Array("\n\n".utf8)) {
                let block = String(decoding: buffer[0..<end], as: UTF8.self)
                buffer.removeFirst(end + 2)
                var event = Event(id: nil, name: "message", data: "")
                var data: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
                    if line.hasPrefix("event: ") { event.name = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
                }
                guard !data.isEmpty || event.id != nil else { continue }
                event.data = data.joined(separator: "\n")
                return event
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { closedByServer = true }
            guard count > 0 else { return nil }
            buffer += chunk[0..<count]
        }
    }

    /// Events until one satisfies `stop` (included), or nil when the stream ends first.
    func events(until stop: (Event) -> Bool) -> [Event]? {
        var seen: [Event] = []
        while let event = next() {
            seen.append(event)
            if stop(event) { return seen }
        }
        return nil
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for index in 0...(buffer.count - needle.count) where buffer[index] == needle[0] {
            if Array(buffer[index..<index + needle.count]) == needle { return index }
        }
        return nil
    }
}
