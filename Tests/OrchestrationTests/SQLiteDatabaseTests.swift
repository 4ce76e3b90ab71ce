import Dispatch
import Foundation
import Glibc
import Synchronization
import Testing
@testable import OmnibaseSupport
@testable import Orchestration

/// A fresh folder under /tmp, removed (with everything in it) when the test body returns.
private func withScratchFolder<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/omnibase-sqlite-XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    let folder = String(cString: try #require(created))
    defer { try? FileManager.default.removeItem(atPath: folder) }
    return try body(folder)
}

/// The permission bits of `path` (not following a final symbolic link).
private func permissions(_ path: String) -> mode_t? {
    var status = stat()
    return lstat(path, &status) == 0 ? status.st_mode & 0o7777 : nil
}

/// Starts `/usr/bin/flock LOCK sh -c '...'`, which holds `lockPath` for `seconds`, and returns
/// once it holds the lock (the command touches a marker file after `flock` has succeeded).
private func holdLockInAnotherProcess(_ lockPath: String, seconds: Double, folder: String) throws -> Process {
    let marker = folder + "/held-\(UInt32.random(in: 0...UInt32.max))"
    let holder = Process()
    holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
    holder.arguments = [lockPath, "sh", "-c", "touch \"$0\"; sleep \(seconds)", marker]
    try holder.run()
    try waitForFile(marker, "flock never took the lock")
    return holder
}

/// Returns once `path` exists (a marker a helper process touches), failing after 10 seconds.
private func waitForFile(_ path: String, _ failure: Comment) throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !FileManager.default.fileExists(atPath: path) {
        try #require(ContinuousClock.now < deadline, failure)
        usleep(5_000)
    }
}

@Suite("SQLiteDatabase")
struct SQLiteDatabaseTests {
    @Test("a read-write connection is in WAL mode and its files are private")
    func openReadWriteUsesWAL() throws {
        try withScratchFolder { folder in
            let path = folder + "/runs.db"
            let db = try SQLiteDatabase(path: path)
            #expect(try db.journalMode() == "wal")
            try db.write { try $0.exec("CREATE TABLE t(x)") }
            #expect(permissions(path) == 0o600)
            #expect(permissions(path + "-wal") == 0o600)
            #expect(permissions(path + "-shm") == 0o600)
            #expect(permissions(path + ".lock") == 0o600)
        }
    }

    @Test("user_version survives a reopen")
    func userVersionRoundTrip() throws {
        try withScratchFolder { folder in
            let path = folder + "/runs.db"
            do {
                let db = try SQLiteDatabase(path: path)
                #expect(try db.userVersion == 0)
                try db.setUserVersion(7)
                #expect(try db.userVersion == 7)
                try db.write { db in
                    try db.setUserVersion(8)  // Joins the transaction.
                }
            }
            let reopened = try SQLiteDatabase(path: path, mode: .readOnly)
            #expect(try reopened.userVersion == 8)
        }
    }

    @Test("typed values survive binding and reading, including NULL, blobs, Unicode and Int64 extremes")
    func typedRoundTrip() throws {
        try withScratchFolder { folder in
            let db = try SQLiteDatabase(path: folder + "/runs.db")
            try db.write { try $0.exec("CREATE TABLE v(id INTEGER PRIMARY KEY, i, r, s, b)") }
            let texts = ["", "héllo wörld", "日本語 🚀 \u{1F468}\u{200D}\u{1F469}", "nul\0inside", "'; DROP TABLE v; --"]
            let integers: [Int64] = [.min, -1, 0, 1, .max]
            let blobs: [[UInt8]] = [[], [0], [0, 1, 2, 255], Array(repeating: 0xAB, count: 100_000)]
            try db.write { db in
                for (index, text) in texts.enumerated() {
                    try db.run("INSERT INTO v(i, r, s, b) VALUES (?, ?, ?, ?)",
                               integers[index], Double(index) + 0.5, text, index < blobs.count ? blobs[index] : nil)
                }
                #expect(db.lastInsertRowID == Int64(texts.count))
                #expect(db.changes == 1)
            }

            let rows = try db.query("SELECT i, r, s, b FROM v ORDER BY id")
            #expect(rows.count == texts.count)
            for (index, row) in rows.enumerated() {
                #expect(row.int64(0) == integers[index])
                #expect(row.double(1) == Double(index) + 0.5)
                #expect(row.string(2) == texts[index])
                if index < blobs.count {
                    #expect(row.blob(3) == blobs[index])
                    #expect(!row.isNull(3))
                } else {
                    #expect(row.isNull(3))
                    #expect(row.blob(3) == nil)
                }
            }

            // The same through the statement's own column readers.
            let statement = try db.prepare("SELECT i, r, s, b, NULL FROM v WHERE id = ?")
            try statement.bind(Int(1), at: 1)
            #expect(try statement.step())
            #expect(statement.int64(0) == .min)
            #expect(statement.int(0) == Int.min)
            #expect(statement.double(1) == 0.5)
            #expect(statement.string(2) == "")
            #expect(statement.blob(3) == [])
            #expect(statement.isNull(4) && statement.string(4) == nil && statement.int(4) == 0)
            #expect(statement.columnCount == 5 && statement.columnName(2) == "s")
            #expect(try !statement.step())

            let optional: String? = nil
            #expect(try db.query("SELECT ? IS NULL, ?", optional, true).first == Row(values: [.integer(1), .integer(1)]))
        }
    }

    @Test("execute binds texts in the statement's own memory: each run reads its own values, through growth, empties and NULs")
    func executeBindsOwnedTexts() throws {
        try withScratchFolder { folder in
            let db = try SQLiteDatabase(path: folder + "/runs.db")
            try db.write { try $0.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c)") }
            let insert = try db.prepare("INSERT INTO t(a, b, c) VALUES (?, ?, ?)")
            // Short texts, then ones that outgrow the buffer (it is replaced), then short ones
            // again (the old bytes are overwritten), an empty text, a NUL inside, no text at all,
            // and fewer values than parameters (the rest NULL, not the previous run's).
            let long = String(repeating: "x", count: 10_000)
            let runs: [(String, String?, Int)] = [
                ("a", "b", 1), (long, long + "y", 2), ("c", nil, 3), ("", "nul\0inside", 4), ("日本語 🚀", "", 5),
            ]
            try db.write { _ in
                for (a, b, c) in runs { try insert.execute(a, b, c) }
                try insert.execute("only")
            }
            let rows = try db.query("SELECT a, b, c FROM t ORDER BY id")
            #expect(rows.count == runs.count + 1)
            for (row, run) in zip(rows, runs) {
                #expect(row.string(0) == run.0)
                #expect(row.string(1) == run.1)
                #expect(row.isNull(1) == (run.1 == nil))
                #expect(row.int(2) == run.2)
            }
            #expect(rows.last?.string(0) == "only")
            #expect(rows.last?.isNull(1) == true && rows.last?.isNull(2) == true)

            // Bound one by one: a text that does not fit the room made is copied by SQLite.
            let select = try db.prepare("SELECT ? || ?")
            select.beginBindings(textBytes: 3)
            try select.bindOwned("abc", at: 1)
            try select.bindOwned(long, at: 2)
            #expect(try select.step())
            #expect(select.string(0) == "abc" + long)
        }
    }

    @Test("cached statements are reused; prepared ones are not")
    func statementCacheReuse() throws {
        try withScratchFolder { folder in
            let db = try SQLiteDatabase(path: folder + "/runs.db")
            let sql = "SELECT ? + 1"
            let first = try db.cachedStatement(sql)
            try first.bind([41])
            #expect(try first.step())
            let second = try db.cachedStatement(sql)
            #expect(first === second)
            // Getting it again reset it and cleared its bindings.
            #expect(try second.step())
            #expect(second.isNull(0))
            #expect(try db.prepare(sql) !== first)
            #expect(try db.query(sql, 1).first?.int(0) == 2)
            #expect(try db.query(sql, 2).first?.int(0) == 3)
        }
    }

    @Test("a throwing write body rolls back and releases the lock")
    func writeRollsBackOnError() throws {
        struct Planned: Error {}
        try withScratchFolder { folder in
            let db = try SQLiteDatabase(path: folder + "/runs.db")
            try db.write { try $0.exec("CREATE TABLE t(x)") }
            #expect(throws: Planned.self) {
                try db.write { db in
                    try db.run("INSERT INTO t VALUES (?)", 1)
                    throw Planned()
                }
            }
            #expect(!db.isInWriteTransaction)
            #expect(try db.query("SELECT count(*) FROM t").first?.int(0) == 0)
            try db.write { try $0.run("INSERT INTO t VALUES (?)", 2) }
            #expect(try db.query("SELECT x FROM t").map { $0.int(0) } == [2])
        }
    }

    @Test("a statement that writes outside write {} is refused")
    func writeOutsideTransactionIsRefused() throws {
        try withScratchFolder { folder in
            let db = try SQLiteDatabase(path: folder + "/runs.db")
            let error = #expect(throws: StoreError.self) { try db.exec("CREATE TABLE t(x)") }
            #expect(error?.code == .other)
            #expect(error?.sql == "CREATE TABLE t(x)")
            #expect(try db.query("SELECT count(*) FROM sqlite_schema").first?.int(0) == 0)
        }
    }

    @Test("four connections on four threads write 800 rows and checkpoint without a conflict",
          .timeLimit(.minutes(3)))
    func concurrentWritersAreExclusive() throws {
        try withScratchFolder { folder in
            let path = folder + "/runs.db"
            do {
                let setup = try SQLiteDatabase(path: path)
                try setup.write { try $0.exec("CREATE TABLE t(worker INTEGER, n INTEGER, pad BLOB)") }
            }
            let failures = Mutex<[String]>([])
            let writersInside = Atomic<Int>(0)
            let finished = DispatchSemaphore(value: 0)
            for worker in 0..<4 {
                let thread = Thread {
                    defer { finished.signal() }
                    do {
                        let db = try SQLiteDatabase(path: path, busyTimeout: .seconds(60))
                        db.checkpointThreshold = 20  // Exercise the automatic checkpoint too.
                        for n in 0..<200 {
                            try db.write { db in
                                let overlapping = writersInside.add(1, ordering: .sequentiallyConsistent).oldValue
                                defer { writersInside.subtract(1, ordering: .sequentiallyConsistent) }
                                if overlapping != 0 { failures.withLock { $0.append("two write bodies overlapped") } }
                                try db.run("INSERT INTO t VALUES (?, ?, ?)", worker, n, [UInt8](repeating: UInt8(n & 0xFF), count: 2_000))
                            }
                            if n % 40 == 39 { try db.checkpoint(n % 80 == 39 ? .passive : .truncate) }
                        }
                    } catch {
                        failures.withLock { $0.append("worker \(worker): \(error)") }
                    }
                }
                thread.start()
            }
            for _ in 0..<4 { finished.wait() }
            #expect(failures.withLock { $0 } == [])

            let db = try SQLiteDatabase(path: path)
            #expect(try db.query("SELECT count(*) FROM t").first?.int(0) == 800)
            #expect(try db.query("SELECT count(DISTINCT worker * 1000 + n) FROM t").first?.int(0) == 800)
            #expect(try db.integrityCheck() == "ok")
        }
    }

    @Test("write waits for a lock held by another process, and reports busy after its timeout",
          .timeLimit(.minutes(1)))
    func writeWaitsForAnotherProcess() throws {
        try withScratchFolder { folder in
            let path = folder + "/runs.db"
            let patient = try SQLiteDatabase(path: path, busyTimeout: .seconds(10))
            let impatient = try SQLiteDatabase(path: path, busyTimeout: .milliseconds(200))
            try patient.write { try $0.exec("CREATE TABLE t(x)") }

            let holder = try holdLockInAnotherProcess(path + ".lock", seconds: 1, folder: folder)
            let error = #expect(throws: StoreError.self) {
                try impatient.write { try $0.run("INSERT INTO t VALUES (0)") }
            }
            #expect(error?.code == .busy)
            #expect(error?.exitCode == 74)
            #expect(throws: StoreError(.busy, message: "")) { try impatient.checkpoint() }

            let clock = ContinuousClock()
            let started = clock.now
            try patient.write { try $0.run("INSERT INTO t VALUES (1)") }
            #expect(clock.now - started > .milliseconds(300), "write did not wait for the other process")
            holder.waitUntilExit()

            #expect(try patient.query("SELECT x FROM t").map { $0.int(0) } == [1])
        }
    }

    @Test("large commits trigger a checkpoint under the lock, so the WAL stays small")
    func automaticCheckpointBoundsTheWAL() throws {
        try withScratchFolder { folder in
            let path = folder + "/runs.db"
            let db = try SQLiteDatabase(path: path)
            db.checkpointThreshold = 20
            try db.write { try $0.exec("CREATE TABLE t(b BLOB)") }
            for n in 0..<200 {
                try db.write { try $0.run("INSERT INTO t VALUES (?)", [UInt8](repeating: UInt8(n & 0xFF), count: 2_000)) }
            }
            #expect(db.automaticCheckpointCount > 5)
            let walSize = try #require(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
            #expect(walSize < 64 * 4096, "the WAL grew to \(walSize) bytes")
            #expect(try db.checkpoint(.truncate).isComplete)
            #expect(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int == 0)
        }
    }

    @Test("while one connection is inside write {}, another can neither write nor checkpoint")
    func checkpointWaitsForWriter() throws {
        try withScratchFolder { folder in
            let path = folder + "/runs.db"
            let first = try SQLiteDatabase(path: path)
            let second = try SQLiteDatabase(path: path, busyTimeout: .milliseconds(100))
            try first.write { db in
                try db.exec("CREATE TABLE t(x)")
                #expect(throws: StoreError(.busy, message: "")) { try second.checkpoint(.passive) }
                #expect(throws: StoreError(.busy, message: "")) { try second.write { _ in } }
            }
            try second.write { try $0.run("INSERT INTO t VALUES (1)") }
            #expect(try second.checkpoint(.passive).isComplete)
        }
    }

    @Test("two FileLocks on one file exclude each other within one process")
    func fileLockInstancesExclude() throws {
        try withScratchFolder { folder in
            let first = try FileLock(path: folder + "/x.lock")
            let second = try FileLock(path: folder + "/x.lock")
            #expect(try first.tryLock())
            #expect(try !second.tryLock())
            #expect(throws: StoreError(.busy, message: "")) { try second.lock(timeout: .milliseconds(20)) }
            first.unlock()
            #expect(try second.tryLock())
            second.unlock()
        }
    }

    /// A holder that takes the lock again microseconds after each release (a store writer
    /// committing back to back) is almost never caught free by a waiter that polls every few
    /// milliseconds: the waiter gave up after its timeout (found with a CLI `run` beside a
    /// writer-bound in-process run in one state folder: exit 74 after 5 s). A fair lock's
    /// waiter goes first. (With `fair: false` the waiter is starved: the test fails.)
    @Test("a waiter gets a fair lock that its holder takes again back to back")
    func aFairLocksWaiterIsNotStarved() throws {
        let fair = true
        try withScratchFolder { folder in
            let path = folder + "/x.lock"
            let stop = Mutex(false), rounds = Mutex(0)
            let holding = DispatchSemaphore(value: 0), stopped = DispatchSemaphore(value: 0)
            Thread {
                defer { stopped.signal() }
                guard let holder = try? FileLock(path: path, fair: fair) else { return }
                var first = true
                while !stop.withLock({ $0 }) {
                    guard (try? holder.lock(timeout: .seconds(10))) != nil else { return }
                    if first { holding.signal(); first = false }
                    usleep(10_000)
                    holder.unlock()
                    rounds.withLock { $0 += 1 }
                }
            }.start()
            holding.wait()
            let waiter = try FileLock(path: path, fair: fair)
            let started = ContinuousClock.now
            let got = (try? waiter.lock(timeout: .seconds(2))) != nil
            let waited = ContinuousClock.now - started
            if got { waiter.unlock() }
            stop.withLock { $0 = true }
            stopped.wait()
            #expect(got, "the waiter was starved for 2 s while the holder took the lock \(rounds.withLock { $0 }) times")
            #expect(waited < .seconds(1), "waited \(waited) for a lock held 10 ms at a time")
        }
    }

    /// A waiter that keeps its place in the queue without taking the lock (a process stopped
    /// with Ctrl-Z while it waited: here a descriptor that holds the queue file) does not
    /// block everyone else: a taker passes it after `queuePatience` and takes the free lock.
    @Test("a fair lock's taker passes a waiter that never takes the lock")
    func aStoppedWaiterIsPassed() throws {
        try withScratchFolder { folder in
            let path = folder + "/x.lock"
            let taker = try FileLock(path: path, fair: true)
            let stopped = open(path + "-wait", O_RDWR | O_CLOEXEC)
            #expect(stopped >= 0)
            defer { close(stopped) }
            #expect(flock(stopped, LOCK_EX | LOCK_NB) == 0)
            #expect(try !taker.tryLock(), "a waiter goes first")
            let started = ContinuousClock.now
            try taker.lock(timeout: .seconds(5))
            let waited = ContinuousClock.now - started
            #expect(waited >= FileLock.queuePatience && waited < .seconds(4), "took the lock after \(waited)")
            taker.unlock()
        }
    }

    @Test("a read-only connection reads the last commit while a writer is inside a transaction")
    func readerReadsDuringWrite() throws {
        try withScratchFolder { folder in
            let path = folder + "/runs.db"
            let writer = try SQLiteDatabase(path: path)
            try writer.write { db in
                try db.exec("CREATE TABLE t(x)")
                try db.run("INSERT INTO t VALUES (1)")
            }
            let reader = try SQLiteDatabase(path: path, mode: .readOnly, busyTimeout: .milliseconds(100))
            try writer.write { db in
                try db.run("INSERT INTO t VALUES (2)")
                #expect(try reader.query("SELECT count(*) FROM t").first?.int(0) == 1)
            }
            #expect(try reader.query("SELECT count(*) FROM t").first?.int(0) == 2)

            #expect(throws: StoreError(.readOnly, message: "")) { try reader.write { _ in } }
            let error = #expect(throws: StoreError.self) { try reader.exec("INSERT INTO t VALUES (3)") }
            #expect(error?.code == .readOnly)
        }
    }

    @Test("a read-only connection to a missing database cannot open it")
    func readerNeedsTheDatabase() throws {
        try withScratchFolder { folder in
            let error = #expect(throws: StoreError.self) {
                _ = try SQLiteDatabase(path: folder + "/missing.db", mode: .readOnly)
            }
            #expect(error?.code == .cannotOpen)
            #expect(error?.exitCode == 74)
        }
    }

    @Test("a COMMIT that fails (a deferred foreign key) rolls back, and the compiled BEGIN and COMMIT work again")
    func failedCommitLeavesTheConnectionUsable() throws {
        try withScratchFolder { folder in
            let db = try SQLiteDatabase(path: folder + "/runs.db")
            try db.write { db in
                try db.exec("CREATE TABLE parent(id INTEGER PRIMARY KEY)")
                try db.exec("CREATE TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
                try db.run("INSERT INTO parent VALUES (1)")
            }
            for round in 1...3 {
                // Checked at COMMIT only: the body succeeds, the COMMIT statement fails.
                let error = #expect(throws: StoreError.self) {
                    try db.write { try $0.run("INSERT INTO child VALUES (?)", 100 + round) }
                }
                #expect(error?.sql == "COMMIT", "round \(round): \(String(describing: error))")
                #expect(!db.isInWriteTransaction)
                try db.write { try $0.run("INSERT INTO child VALUES (1)") }
            }
            #expect(try db.query("SELECT count(*) FROM child").first?.int(0) == 3, "only the valid rows")
            #expect(try db.query("SELECT count(*) FROM child WHERE p <> 1").first?.int(0) == 0)
        }
    }

    @Test("SQLITE_FULL (max_page_count) is diskFull, exit 74, and the database recovers")
    func diskFullFromPageLimit() throws {
        try withScratchFolder { folder in
            let db = try SQLiteDatabase(path: folder + "/runs.db")
            try db.write { db in
                try db.exec("CREATE TABLE t(b BLOB)")
                try db.run("INSERT INTO t VALUES (?)", [UInt8](repeating: 1, count: 1_000))
            }
            let pages = try #require(try db.query("PRAGMA page_count").first?.int(0))
            _ = try db.query("PRAGMA max_page_count=\(pages + 2)")

            let error = #expect(throws: StoreError.self) {
                try db.write { try $0.run("INSERT INTO t VALUES (?)", [UInt8](repeating: 2, count: 100_000)) }
            }
            #expect(error?.code == .diskFull)
            #expect(error?.exitCode == 74)
            #expect(error?.sql?.contains("INSERT") == true)
            #expect(!db.isInWriteTransaction)

            _ = try db.query("PRAGMA max_page_count=1000000")
            try db.write { try $0.run("INSERT INTO t VALUES (?)", [UInt8](repeating: 3, count: 100_000)) }
            #expect(try db.query("SELECT count(*) FROM t").first?.int(0) == 2)
            #expect(try db.integrityCheck() == "ok")
        }
    }

    @Test("a full file system is diskFull, exit 74, and the database recovers once space is freed",
          .enabled(if: TinyFileSystem.canMount, "mounting tmpfs is not permitted here"),
          .timeLimit(.minutes(1)))
    func diskFullFromFileSystem() throws {
        try withScratchFolder { folder in
            let mountPoint = folder + "/tiny"
            let tiny = try TinyFileSystem(at: mountPoint, size: "1m")
            defer { tiny.unmount() }
            let filler = mountPoint + "/filler"
            do {
                let db = try SQLiteDatabase(path: mountPoint + "/runs.db")
                try db.write { try $0.exec("CREATE TABLE t(b BLOB)") }
                // Leave a little room, then fill it.
                #expect(FileManager.default.createFile(atPath: filler, contents: Data(count: 700 * 1024)))
                var failure: StoreError?
                for n in 0..<100 where failure == nil {
                    do {
                        try db.write { try $0.run("INSERT INTO t VALUES (?)", [UInt8](repeating: UInt8(n), count: 32 * 1024)) }
                    } catch let error as StoreError {
                        failure = error
                    }
                }
                let error = try #require(failure, "the file system never filled up")
                #expect(error.code == .diskFull, "\(error)")
                #expect(error.exitCode == 74)
                let committed = try #require(try db.query("SELECT count(*) FROM t").first?.int(0))

                try FileManager.default.removeItem(atPath: filler)
                try db.write { try $0.run("INSERT INTO t VALUES (?)", [UInt8](repeating: 9, count: 32 * 1024)) }
                #expect(try db.query("SELECT count(*) FROM t").first?.int(0) == committed + 1)
                #expect(try db.integrityCheck() == "ok")
                try db.checkpoint()
            }
            let reopened = try SQLiteDatabase(path: mountPoint + "/runs.db")
            #expect(try reopened.integrityCheck() == "ok")
        }
    }

    @Test("a file that is not a database is reported as corrupt (exit 74), not a crash")
    func garbageFileIsCorrupt() throws {
        try withScratchFolder { folder in
            let path = folder + "/runs.db"
            let garbage = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }
            #expect(FileManager.default.createFile(atPath: path, contents: Data(garbage)))
            let error = #expect(throws: StoreError.self) { _ = try SQLiteDatabase(path: path) }
            #expect(error?.code == .corrupt)
            #expect(error?.exitCode == 74)
            #expect(error?.sqliteResultCode == 26)  // SQLITE_NOTADB
            #expect(error.map { $0.message.contains(path) } == true)
        }
    }

    @Test("a symbolic link in place of the database is refused, exit 5")
    func symlinkedDatabaseIsRefused() throws {
        try withScratchFolder { folder in
            let real = folder + "/real.db"
            do { _ = try SQLiteDatabase(path: real) }
            #expect(symlink(real, folder + "/runs.db") == 0)
            let error = #expect(throws: StoreError.self) { _ = try SQLiteDatabase(path: folder + "/runs.db") }
            #expect(error?.code == .symlinkRefused)
            #expect(error?.exitCode == 5)
        }
    }
}

/// A size-limited tmpfs mounted for one test (needs root and a sandbox that allows `mount`).
private struct TinyFileSystem {
    let mountPoint: String

    /// Whether this environment lets us mount a tmpfs; checked once.
    static let canMount: Bool = {
        var template = Array("/tmp/omnibase-mount-XXXXXX".utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { return false }
        let probe = String(cString: created)
        defer { rmdir(probe) }
        guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]) else { return false }
        return run("/bin/umount", [probe])
    }()

    init(at mountPoint: String, size: String) throws {
        self.mountPoint = mountPoint
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try #require(Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0700", "tmpfs", mountPoint]))
    }

    func unmount() {
        _ = Self.run("/bin/umount", [mountPoint])
    }

    private static func run(_ executable: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
