import Foundation
import Orchestration

/// The Slurm executor against the local one on the same plan of independent `true` steps, and
/// Slurm's own floor: the same number of bare `sbatch` jobs, and submit-to-start latency.
struct SlurmMeasurement {
    var steps: Int
    var concurrency: Int
    var localSeconds: Double
    var slurmSeconds: Double
    /// Median step duration (start to recorded end) per executor.
    var localMedianStep: Double
    var slurmMedianStep: Double
    /// The same number of jobs submitted with `sbatch` straight away, until the last has ended.
    var bareSlurmSeconds: Double
    /// Submit-to-start latencies (seconds) of single jobs: median and maximum.
    var submitToStartMedian: Double
    var submitToStartMax: Double

    var json: JSONValue {
        .object([
            "steps": .int(steps), "concurrency": .int(concurrency),
            "local_sec": .double(localSeconds), "slurm_sec": .double(slurmSeconds),
            "local_steps_per_sec": .double(Double(steps) / localSeconds),
            "slurm_steps_per_sec": .double(Double(steps) / slurmSeconds),
            "local_median_step_sec": .double(localMedianStep), "slurm_median_step_sec": .double(slurmMedianStep),
            "bare_sbatch_sec": .double(bareSlurmSeconds), "bare_sbatch_jobs_per_sec": .double(Double(steps) / bareSlurmSeconds),
            "submit_to_start_median_sec": .double(submitToStartMedian), "submit_to_start_max_sec": .double(submitToStartMax),
        ])
    }
}

/// Runs a shell command and returns its stdout (the benchmark's own calls to Slurm's tools).
private func capture(_ command: String, _ arguments: [String]) async -> String {
    let out = NSTemporaryDirectory() + "omnibase-bench-\(UUID().uuidString).out"
    defer { try? FileManager.default.removeItem(atPath: out) }
    _ = await LocalProcess.run(ProcessSpec(command: command, arguments: arguments, stdoutPath: out, stderrPath: "/dev/null",
                                           timeout: .seconds(120)))
    return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
}

private func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    return values.sorted()[values.count / 2]
}

/// Runs the plan with one executor; returns (wall seconds, median step seconds).
private func runPlan(_ path: String, executor: ExecutorKind, concurrency: Int, state: String) async throws -> (Double, Double) {
    let loaded = try PlanLoader.load(path: path)
    let session = try RunSession(stateDirectory: state)
    let started = ContinuousClock.now
    let report = try await session.start(loaded, request: RunRequest(maxConcurrency: concurrency, executor: executor))
    let elapsed = started.duration(to: .now)
    guard report.status == .succeeded else {
        throw EngineError(.executionFailed, "the \(executor.rawValue) run ended \(report.status.rawValue)")
    }
    let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return (wall, median(report.steps.compactMap(\.duration)))
}

/// `count` jobs of `true` straight through `sbatch`, until `squeue` shows every one ended.
private func bareSbatch(count: Int, folder: String) async throws -> Double {
    let name = "omnibase-bench-\(getpid())-\(UUID().uuidString.prefix(8))"
    let script = folder + "/true.sh"
    try "#!/bin/sh\nexec true\n".write(toFile: script, atomically: true, encoding: .utf8)
    let started = ContinuousClock.now
    for _ in 0..<count {
        _ = await capture("sbatch", ["--parsable", "--no-requeue", "--job-name=\(name)", "--output=/dev/null", script])
    }
    while true {
        let listing = await capture("squeue", ["-h", "-t", "all", "--name=\(name)", "-o", "%T"])
        let states = listing.split(separator: "\n")
        let open = states.filter { !["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"].contains(String($0)) }
        if states.count >= count && open.isEmpty { break }
        try await Task.sleep(for: .milliseconds(50))
    }
    let elapsed = started.duration(to: .now)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// Single jobs, one at a time: from just before `sbatch` to the first line the job runs
/// (it writes the time of day).
private func submitToStart(samples: Int, folder: String) async throws -> [Double] {
    var latencies: [Double] = []
    for index in 0..<samples {
        let stamp = folder + "/start-\(index)"
        let script = folder + "/stamp-\(index).sh"
        try "#!/bin/sh\ndate +%s.%N > '\(stamp).tmp' && mv '\(stamp).tmp' '\(stamp)'\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        let submitted = Date().timeIntervalSince1970
        _ = await capture("sbatch", ["--parsable", "--no-requeue", "--job-name=omnibase-bench-latency", "--output=/dev/null", script])
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: stamp, encoding: .utf8),
               let started = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                latencies.append(started - submitted)
                break
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
    return latencies
}

func measureSlurm(steps: Int, concurrency: Int, latencySamples: Int, scratch: String) async throws -> SlurmMeasurement {
    let folder = scratch + "/slurm-\(steps)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let files = try DAGFiles(shape: .independent, count: steps, folder: folder)
    let (local, localStep) = try await runPlan(files.planPath, executor: .local, concurrency: concurrency, state: folder + "/state-local")
    let (slurm, slurmStep) = try await runPlan(files.planPath, executor: .slurm, concurrency: concurrency, state: folder + "/state-slurm")
    let bare = try await bareSbatch(count: steps, folder: folder)
    let latencies = try await submitToStart(samples: latencySamples, folder: folder)
    return SlurmMeasurement(steps: steps, concurrency: concurrency, localSeconds: local, slurmSeconds: slurm,
                            localMedianStep: localStep, slurmMedianStep: slurmStep, bareSlurmSeconds: bare,
                            submitToStartMedian: median(latencies), submitToStartMax: latencies.max() ?? 0)
}

func slurmScenario() async throws {
    let steps = Int(option("--steps", in: arguments) ?? "200") ?? 200
    let concurrency = Int(option("--concurrency", in: arguments) ?? "64") ?? 64
    let m = try await measureSlurm(steps: steps, concurrency: concurrency, latencySamples: 20, scratch: scratch)
    print("executor  steps   -j   wall s   steps/s   median step s")
    print(String(format: "local    %6d %4d %8.2f %9.1f %15.3f", steps, concurrency, m.localSeconds,
                 Double(steps) / m.localSeconds, m.localMedianStep))
    print(String(format: "slurm    %6d %4d %8.2f %9.1f %15.3f", steps, concurrency, m.slurmSeconds,
                 Double(steps) / m.slurmSeconds, m.slurmMedianStep))
    print(String(format: "bare sbatch, %d jobs: %.2f s (%.1f jobs/s); submit-to-start: median %.3f s, max %.3f s",
                 steps, m.bareSlurmSeconds, Double(steps) / m.bareSlurmSeconds, m.submitToStartMedian, m.submitToStartMax))
    try? FileManager.default.removeItem(atPath: scratch)
    try writeResults("slurm", [m.json])
}

/// Whether `sbatch` is on the PATH (the smoke run skips the Slurm scenario without it).
func hasSbatch() -> Bool {
    (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        .contains { FileManager.default.isExecutableFile(atPath: "\($0)/sbatch") }
}
