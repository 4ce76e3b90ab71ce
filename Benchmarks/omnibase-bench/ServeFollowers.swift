import Dispatch
import Foundation
import Glibc
import Orchestration
import Synchronization

// The `serve` scenario: the process benchmark's DAG of `true` steps run in this process (durable
// store on, as `process` measures it) while `omnibase-agents serve` (the binary beside this one)
// feeds N followers of the run's page, each an event-stream connection in a helper process
// (this binary again, `serve-follower`), so neither the server nor the readers count as the
// engine's CPU. Figures: wall and engine CPU per step with and without followers, the server's
// CPU during the run and its memory, and the latency from an event's timestamp (taken when the
// engine creates it; it is stored within the next commit) to its arrival at a follower.

/// One measured run of the `serve` scenario.
struct ServeRound {
    var followers: Int
    var measured: Measured
    var steps: Int
    var serverCPU: Double
    var serverRSS: Int
    var serverPeakRSS: Int
    var latencies: [Double]
    var eventsPerFollower: Int
    /// CPU seconds of the helper process that holds the followers (the browsers' stand-in).
    var followerCPU: Double
    /// The server's feed during the run (and until the followers had the end): renderings,
    /// their milliseconds, looks at the store, events read.
    var feedWork: [String: Int]
}

/// The `feed` object of `/api/monitor`.
func feedStatistics(port: UInt16) -> [String: Int] {
    guard let body = benchGet(port: port, path: "/api/monitor"),
          let json = try? StrictJSONParser.parse(Array(body.utf8)).toValue(), case .object(let members)? = json["feed"] else { return [:] }
    var result: [String: Int] = [:]
    for member in members { result[member.key] = member.value.intValue ?? 0 }
    return result
}

/// `GET path` on 127.0.0.1:port; the body, or nil.
func benchGet(port: UInt16, path: String) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { break }
        bytes += buffer[0..<count]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    return text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) }
}

/// A field of `/api/monitor`.
func monitorField(port: UInt16, _ name: String) -> Int? {
    guard let body = benchGet(port: port, path: "/api/monitor"),
          let json = try? StrictJSONParser.parse(Array(body.utf8)).toValue() else { return nil }
    return json[name]?.intValue
}

/// User + system CPU seconds of a process, from `/proc/<pid>/stat`.
func processCPU(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// `VmRSS` and `VmHWM` (bytes) of a process.
func processMemory(_ pid: Int32) -> (rss: Int, peak: Int) {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Int {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }
    return (field("VmRSS"), field("VmHWM"))
}

/// Runs the scenario: `rounds` times each follower count, alternating.
func runServeScenario(cli: String, steps: Int, followerCounts: [Int], rounds: Int, concurrency: Int,
                      scratch: String) async throws -> [ServeRound] {
    let folder = scratch + "/serve"
    try? FileManager.default.removeItem(atPath: folder)
    let files = try DAGFiles(shape: .independent, count: steps, folder: folder)
    let loaded = try PlanLoader.load(path: files.planPath)
    let state = folder + "/state"
    let session = try RunSession(stateDirectory: state)
    let serveOut = folder + "/serve.out"
    let server = Task {
        await LocalProcess.run(ProcessSpec(command: cli, arguments: ["serve", "--listen", "127.0.0.1:0", "--state-dir", state],
                                           stdoutPath: serveOut, stderrPath: folder + "/serve.err", timeout: .seconds(3600)))
    }
    var port: UInt16 = 0
    for _ in 0..<2000 where port == 0 {
        if let line = try? String(contentsOfFile: serveOut, encoding: .utf8), line.hasSuffix("\n"),
           let text = line.split(separator: ":").last?.trimmingCharacters(in: CharacterSet(charactersIn: "/\n")) {
            port = UInt16(text) ?? 0
        }
        try await Task.sleep(for: .milliseconds(10))
    }
    guard port != 0, let serverPID = monitorField(port: port, "pid").map(Int32.init) else {
        throw EngineError(.executionFailed, "omnibase-agents serve did not start")
    }
    defer { kill(serverPID, SIGTERM) }
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
    var results: [ServeRound] = []
    for round in 0..<rounds {
        for count in followerCounts {
            let runID = RunID.make()
            let out = folder + "/followers-\(round)-\(count).json"
            var followers: Task<ProcessOutcome, Never>?
            // The last round's followers must be gone, or the count below would include them.
            var settled = 0
            while (monitorField(port: port, "followers") ?? 0) > 0 && settled < 3000 {
                try await Task.sleep(for: .milliseconds(10))
                settled += 1
            }
            if count > 0 {
                followers = Task {
                    await LocalProcess.run(ProcessSpec(command: me, arguments: ["serve-follower", "--port", "\(port)", "--run", runID,
                                                                                "--count", "\(count)", "--out", out],
                                                       stdoutPath: "/dev/null", stderrPath: folder + "/follower.err",
                                                       timeout: .seconds(3600)))
                }
                var waited = 0
                while (monitorField(port: port, "followers") ?? 0) < count && waited < 3000 {
                    try await Task.sleep(for: .milliseconds(10))
                    waited += 1
                }
            }
            let cpuBefore = processCPU(serverPID)
            let statsBefore = feedStatistics(port: port)
            let measured = try await measure {
                let report = try await session.start(loaded, request: RunRequest(maxConcurrency: concurrency), runID: runID)
                guard report.status == .succeeded else { throw EngineError(.executionFailed, "benchmark run failed") }
            }
            let serverCPU = processCPU(serverPID) - cpuBefore
            var feedWork: [String: Int] = [:]
            let memory = processMemory(serverPID)
            var latencies: [Double] = []
            var perFollower = 0
            var followerCPU = 0.0
            if let followers {
                _ = await followers.value
                for (key, value) in feedStatistics(port: port) { feedWork[key] = value - (statsBefore[key] ?? 0) }
                if let text = try? String(contentsOfFile: out, encoding: .utf8),
                   let json = try? StrictJSONParser.parse(Array(text.utf8)).toValue() {
                    latencies = (json["latencies_ms"]?.arrayValue ?? []).compactMap(\.doubleValue)
                    perFollower = json["min_events"]?.intValue ?? 0
                    followerCPU = json["cpu_sec"]?.doubleValue ?? 0
                }
            }
            results.append(ServeRound(followers: count, measured: measured, steps: steps, serverCPU: serverCPU,
                                      serverRSS: memory.rss, serverPeakRSS: memory.peak, latencies: latencies,
                                      eventsPerFollower: perFollower, followerCPU: followerCPU, feedWork: feedWork))
        }
    }
    kill(serverPID, SIGTERM)
    _ = await server.value
    return results
}

/// `serve-follower`: N event-stream connections to a run's page, each on a thread, until the
/// run ends; writes the latencies (event timestamp to arrival, ms) and the fewest events a
/// follower got.
func followerMain() {
    guard let port = option("--port", in: arguments).flatMap(UInt16.init), let runID = option("--run", in: arguments),
          let count = option("--count", in: arguments).flatMap(Int.init), let out = option("--out", in: arguments) else {
        FileHandle.standardError.write(Data("serve-follower needs --port, --run, --count and --out\n".utf8))
        exit(2)
    }
    let results = Mutex<(latencies: [Double], minEvents: Int)>(([], .max))
    let group = DispatchGroup()
    for _ in 0..<count {
        group.enter()
        let thread = Thread {
            let (latencies, events) = follow(port: port, runID: runID)
            results.withLock { state in
                state.latencies += latencies
                state.minEvents = min(state.minEvents, events)
            }
            group.leave()
        }
        thread.start()
    }
    group.wait()
    let (latencies, minEvents) = results.withLock { ($0.latencies, $0.minEvents) }
    let json: JSONValue = .object(["latencies_ms": .array(latencies.map { .double($0) }), "min_events": .int(minEvents),
                                   "cpu_sec": .double(cpuSeconds(RUSAGE_SELF))])
    try? json.serialized().write(toFile: out, atomically: true, encoding: .utf8)
    exit(0)
}

/// One follower: reads the run's event stream to its `end`.
func follow(port: UInt16, runID: String) -> (latencies: [Double], events: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return ([], 0) }
    let request = Array("GET /runs/\(runID)/events?wait=1 HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var latencies: [Double] = []
    var events = 0
    var pending: [UInt8] = []
    var index = 0
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    let eventLine = Array("event: event\n".utf8), endLine = Array("event: end\n".utf8), marker = Array("\"ts\":\"".utf8)
    func find(_ needle: [UInt8], in bytes: ArraySlice<UInt8>) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var index = bytes.startIndex
        while index <= bytes.endIndex - needle.count {
            if bytes[index] == needle[0] && bytes[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { break }
        let arrived = Date()
        pending += buffer[0..<count]
        // Messages end with a blank line; each byte is scanned once (a page is megabytes).
        var start = 0
        while index + 1 < pending.count {
            guard pending[index] == 10 && pending[index + 1] == 10 else {
                index += 1
                continue
            }
            let message = pending[start..<index]
            start = index + 2
            index = start
            if message.starts(with: endLine) || find(endLine, in: message.prefix(64)) != nil { return (latencies, events) }
            guard find(eventLine, in: message.prefix(64)) != nil, let at = find(marker, in: message) else { continue }
            let stamp = String(decoding: pending[(at + marker.count)..<min(at + marker.count + 24, pending.count)], as: UTF8.self)
            if let date = Timestamp.parse(stamp) {
                latencies.append(arrived.timeIntervalSince(date) * 1000)
                events += 1
            }
        }
        pending.removeFirst(start)
        index -= start
    }
    return (latencies, events)
}

/// The `serve` scenario's table and results file.
func serveScenario() async throws {
    guard let cli = siblingCLI() else {
        throw EngineError(.usage, "the serve scenario needs omnibase-agents built beside omnibase-bench (same configuration)")
    }
    let steps = Int(option("--steps", in: arguments) ?? "5000") ?? 5000
    let counts = (option("--followers", in: arguments) ?? "0,20").split(separator: ",").compactMap { Int($0) }
    let rounds = Int(option("--rounds", in: arguments) ?? "3") ?? 3
    let concurrency = Int(option("--concurrency", in: arguments) ?? "2") ?? 2
    let results = try await runServeScenario(cli: cli, steps: steps, followerCounts: counts, rounds: rounds,
                                             concurrency: concurrency, scratch: scratch)
    print("followers  steps  -j  wall s  wall us/step  engine CPU us/step  server CPU s  readers CPU s  server RSS MiB (peak)"
          + "  latency ms p50 / p95 / max  events/follower")
    var rows: [JSONValue] = []
    func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
    }
    for row in results {
        let perStep = row.measured.wall / Double(row.steps) * 1e6
        let cpuPerStep = row.measured.engineCPU / Double(row.steps) * 1e6
        let p50 = percentile(row.latencies, 0.5), p95 = percentile(row.latencies, 0.95), worst = row.latencies.max()
        let work: [String] = row.feedWork.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        let feedText: String = work.isEmpty ? "" : "  feed: " + work.joined(separator: ", ")
        print(String(format: "%9d  %5d  %2d  %6.2f  %12.1f  %18.1f  %12.2f  %13.2f  %9.1f (%5.1f)", row.followers, row.steps,
                     concurrency, row.measured.wall, perStep, cpuPerStep, row.serverCPU, row.followerCPU, Double(row.serverRSS) / 1048576,
                     Double(row.serverPeakRSS) / 1048576)
              + "  " + [p50, p95, worst].map { $0.map { String(format: "%.1f", $0) } ?? "-" }.joined(separator: " / ")
              + "  \(row.eventsPerFollower)" + feedText)
        rows.append(.object([
            "followers": .int(row.followers), "steps": .int(row.steps), "concurrency": .int(concurrency),
            "wall_sec": .double(row.measured.wall), "wall_us_per_step": .double(perStep),
            "engine_cpu_us_per_step": .double(cpuPerStep), "server_cpu_sec": .double(row.serverCPU),
            "followers_cpu_sec": .double(row.followerCPU), "server_rss_bytes": .int(row.serverRSS), "server_peak_rss_bytes": .int(row.serverPeakRSS),
            "latency_ms_p50": p50.map { .double($0) } ?? .null, "latency_ms_p95": p95.map { .double($0) } ?? .null,
            "latency_ms_max": worst.map { .double($0) } ?? .null, "events_per_follower": .int(row.eventsPerFollower),
            "feed": .object(row.feedWork.sorted { $0.key < $1.key }.map { .init($0.key, .int($0.value)) }),
        ]))
    }
    try? FileManager.default.removeItem(atPath: scratch)
    try writeResults("serve", rows)
}
