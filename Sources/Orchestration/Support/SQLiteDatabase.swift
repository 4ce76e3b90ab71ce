import CSQLite
import Glibc

/*
 How writes, checkpoints and closes are kept safe on SQLite 3.40
 ===============================================================

 The system SQLite (3.40.1) has the *WAL-reset race*: when two connections, in one process or in
 several, write or checkpoint at the same moment, one of them can restart ("reset") the
 write-ahead log while the other is still appending to or copying from it, and the database can
 be corrupted. Upstream fixed it in 3.51.3; we cannot ship a newer SQLite, so this file makes the
 race impossible by design: every operation that can append to, checkpoint or reset the WAL runs
 while holding one exclusive, cross-process lock, `flock(2)` on `<database>.lock` (for the state
 folder: `runs.db.lock`). Those operations are:

 1. Write transactions. `write { }` takes the lock, then runs `BEGIN IMMEDIATE`, the body and
    `COMMIT` (`ROLLBACK` when the body throws), then releases the lock. A statement that would
    write outside `write { }` is refused before SQLite runs it (`sqlite3_stmt_readonly`), so no
    code path can write without the lock. The switch to WAL mode at open time (which writes the
    database header) happens under the lock too.
 2. Checkpoints. SQLite's automatic checkpoint (which would run inside any `COMMIT`) is turned off
    with `sqlite3_wal_autocheckpoint(db, 0)`, and our own `sqlite3_wal_hook` records how many
    frames the WAL holds after each commit. When it has grown by `checkpointThreshold` pages
    (1000 by default, ~4 MB) since the last checkpoint, `write { }` runs a PASSIVE checkpoint
    before it releases the lock. `checkpoint()` runs one on demand, also under the lock.
 3. Closing. The last connection to close a WAL database checkpoints it and deletes the WAL.
    `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE` would turn that off, but `sqlite3_db_config` is variadic
    and cannot be called from Swift, so the close itself takes the lock. If the lock cannot be had
    within the busy timeout, the connection is deliberately left open (leaked) rather than closed
    unlocked: when the process exits the kernel closes its descriptors without any checkpoint,
    which is safe, and the next connection replays the WAL.

 Readers (`.readOnly` connections) never take the lock: they cannot write, checkpoint or reset
 the WAL, so they are outside the race. They see the last transaction committed before their
 read began (snapshot isolation) and never block a writer.

 The lock is a `flock`, not an `fcntl` lock, because `flock` locks belong to an open file
 description: two connections in one process exclude each other exactly as two processes do, and
 a crashed holder's lock disappears with its process. Waiting for it polls with short sleeps up to
 the busy timeout and then throws `StoreError.Code.busy`, so a stuck peer is reported, not waited
 on forever. It is a fair `FileLock` (`<database>.lock-wait` beside it): a waiter goes before a
 connection that would take the lock again back to back, which polling alone never caught free.

 Thread rules
 ============
 `SQLiteDatabase` and `Statement` are deliberately *not* `Sendable`: a connection belongs to one
 owner at a time (an actor such as the run store, or one thread), and the compiler enforces that.
 Because of that guarantee the connection is opened with `SQLITE_OPEN_NOMUTEX` (SQLite's
 "multi-thread" mode): SQLite's per-connection mutex would only add cost, and multi-thread mode
 still allows the connection to move between threads as an actor hops executors, as long as two
 threads never use it at the same time, which is exactly what non-`Sendable` guarantees. Wrapping
 the pointer in a `Mutex` instead would make `write { db in ... }` deadlock as soon as the body
 used `db`, since `Mutex` is not recursive.
 */

/// One connection to an SQLite database in WAL mode, with a statement cache and write
/// transactions that are exclusive across processes.
///
/// Writes go through ``write(_:)`` only; checkpoints through ``checkpoint(_:)`` or automatically
/// after large commits. Both run under the cross-process lock `<path>.lock`, which protects
/// SQLite 3.40 from its WAL-reset race (see the block comment at the top of this file).
///
/// - Important: Not `Sendable`: keep a connection inside one actor (or one thread). Give every
///   concurrent owner its own connection; they then coordinate through SQLite and the lock file.
public final class SQLiteDatabase {
    /// How the connection opens the database.
    public enum Mode: Sendable, Hashable {
        /// Reads and writes; creates the file (mode 0600) and switches it to WAL mode.
        case readWrite
        /// Reads only (`SQLITE_OPEN_READONLY`); never takes the write lock.
        case readOnly
        /// Reads a database that nobody can be writing (`immutable=1`): for a state folder on a
        /// read-only file system, where SQLite cannot create the WAL's `-shm` file that a normal
        /// read-only connection needs.
        case immutable
    }

    /// The durability of commits (`PRAGMA synchronous`).
    public enum Synchronous: String, Sendable, Hashable {
        /// Every commit is synced to disk before `write { }` returns: survives power loss.
        case full = "FULL"
        /// The WAL is synced at checkpoints only: an OS crash or power loss may undo the latest
        /// commits, but never corrupts the database; a killed process loses nothing (its commits
        /// are in the page cache).
        case normal = "NORMAL"
    }

    /// How much a checkpoint does (`sqlite3_wal_checkpoint_v2`).
    public enum CheckpointMode: Sendable, Hashable {
        /// Copies what it can without waiting for readers.
        case passive
        /// Waits (up to the busy timeout) for readers, copies everything.
        case full
        /// As `.full`, then waits for readers to leave the WAL so the next writer restarts it.
        case restart
        /// As `.restart`, then truncates the WAL file to zero bytes.
        case truncate

        fileprivate var rawValue: Int32 {
            switch self {
            case .passive: SQLITE_CHECKPOINT_PASSIVE
            case .full: SQLITE_CHECKPOINT_FULL
            case .restart: SQLITE_CHECKPOINT_RESTART
            case .truncate: SQLITE_CHECKPOINT_TRUNCATE
            }
        }
    }

    /// What a checkpoint achieved.
    public struct CheckpointResult: Sendable, Hashable {
        /// Frames in the WAL when the checkpoint ended (0 after a successful `.truncate`).
        public let walFrames: Int
        /// Frames of the WAL now copied into the database.
        public let checkpointedFrames: Int
        /// Whether everything was copied (false when readers held the checkpoint back).
        public let isComplete: Bool
    }

    /// The database file.
    public let path: String
    /// How the connection was opened.
    public let mode: Mode
    /// How long to wait for the write lock and for SQLite's own locks.
    public let busyTimeout: Duration
    /// Growth of the WAL, in pages, after which `write { }` checkpoints (PASSIVE) before it
    /// releases the lock.
    public var checkpointThreshold = 1000

    private let connection: SQLiteConnectionHandle
    private var statementCache: [String: Statement] = [:]
    /// `BEGIN IMMEDIATE` and `COMMIT`, compiled once: every ``write(_:)`` runs both, and
    /// compiling them each time (``exec(_:)``: the text copied, parsed and the statement
    /// finalized) took ~5 of the ~45 us a chain link's `BEGIN` and `COMMIT` cost at NORMAL.
    private var transactionStatements: (begin: Statement, commit: Statement)?
    private var framesAtLastCheckpoint = 0

    /// Whether a ``write(_:)`` body is running on this connection.
    public private(set) var isInWriteTransaction = false

    /// How many automatic checkpoints ``write(_:)`` has run on this connection (for diagnostics).
    private(set) var automaticCheckpointCount = 0

    /// Opens (read-write: creating) the database at `path` and configures the connection.
    ///
    /// Read-write connections create the file with mode 0600 when it is missing (SQLite then
    /// gives the `-wal` and `-shm` files the same mode), open the lock file `<path>.lock`, switch
    /// to WAL mode under the lock and check that SQLite reports `wal`, turn off automatic
    /// checkpoints, and set `synchronous`, the busy timeout and `foreign_keys=ON`.
    ///
    /// Read-only connections need the database to exist. On a WAL database SQLite also needs the
    /// `-shm` file to exist or to be creatable (it opens it read-write when it can, even for a
    /// read-only connection); in a state folder that we own it always is.
    ///
    /// - Parameters:
    ///   - path: The database file, e.g. ``StateDirectory/databasePath``.
    ///   - mode: Read-write (default) or read-only.
    ///   - synchronous: Commit durability; `.full` by default.
    ///   - busyTimeout: How long to wait for another writer; 5 seconds by default.
    /// - Throws: ``StoreError``: `.cannotOpen`, `.corrupt` (not a database), `.symlinkRefused`
    ///   (`path` or the lock file is a symbolic link), `.busy`, `.readOnly`, `.ioError`.
    /// - Important: Opening read-write takes the write lock for a moment (to switch to WAL mode),
    ///   so it waits, up to `busyTimeout`, for a writer that holds it. Do not run
    ///   `PRAGMA wal_autocheckpoint` on the connection: it would replace the WAL hook that
    ///   schedules checkpoints (safety is kept, since a checkpoint SQLite runs by itself happens
    ///   inside `COMMIT`, under the lock, but the WAL would then be checkpointed by SQLite's rules).
    public init(
        path: String,
        mode: Mode = .readWrite,
        synchronous: Synchronous = .full,
        busyTimeout: Duration = .seconds(5)
    ) throws {
        self.path = path
        self.mode = mode
        self.busyTimeout = busyTimeout

        // NOMUTEX, and moving a connection between threads at all, need a thread-safe build
        // (SQLITE_THREADSAFE 1 or 2; Debian's is 1).
        guard sqlite3_threadsafe() != 0 else {
            throw StoreError(.other, message: "The system SQLite library was built without thread support; "
                + "install one built with SQLITE_THREADSAFE=1.", path: path)
        }
        Self.configureLibrary
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOFOLLOW
        var lock: FileLock?
        switch mode {
        case .readWrite:
            flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
            try Self.createFileIfMissing(path)
            lock = try FileLock(path: path + ".lock", fair: true)
        case .readOnly:
            flags |= SQLITE_OPEN_READONLY
        case .immutable:
            flags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI
        }

        var handle: OpaquePointer?
        let name = mode == .immutable ? Self.immutableURI(path) : path
        let status = sqlite3_open_v2(name, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) }
            let systemErrno = handle.map { sqlite3_system_errno($0) } ?? 0
            // A failed open has read nothing and opened no WAL, so closing it cannot checkpoint.
            sqlite3_close(handle)
            throw StoreError.sqlite(status, sqliteMessage: message, sql: nil, path: path, systemErrno: systemErrno)
        }
        connection = SQLiteConnectionHandle(pointer: handle, path: path, lock: lock, busyTimeout: busyTimeout)
        try configure(synchronous: synchronous)
    }

    /// Process-wide settings made once, before SQLite initializes (the first open): memory
    /// statistics off, so an allocation does not take SQLite's global memory mutex (nothing here
    /// reads the statistics or sets a soft heap limit, which need them). If SQLite was already
    /// initialized by other code, the setting is refused and nothing changes.
    private static let configureLibrary: Void = {
        _ = omnibase_sqlite3_disable_memstatus()
    }()

    /// `file:` URI of a path with `immutable=1`, percent-encoding what URIs reserve.
    private static func immutableURI(_ path: String) -> String {
        var encoded = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "/"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                encoded += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return "file:" + encoded + "?immutable=1"
    }

    private func configure(synchronous: Synchronous) throws {
        let db = connection.pointer
        sqlite3_busy_timeout(db, Int32(clamping: busyTimeout.milliseconds))
        guard let lock = connection.lock else {
            try exec("PRAGMA foreign_keys=ON")
            return
        }
        // Turn off SQLite's own checkpoints (they would run inside COMMIT), then install the hook
        // that tells us how large the WAL has grown. (Installing a WAL hook also replaces the
        // automatic checkpoint; the explicit call documents the intent.)
        sqlite3_wal_autocheckpoint(db, 0)
        let hook: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = {
            context, _, _, frames in
            if let context {
                Unmanaged<SQLiteWALFrameCounter>.fromOpaque(context).takeUnretainedValue().frames = Int(frames)
            }
            return SQLITE_OK
        }
        sqlite3_wal_hook(db, hook, Unmanaged.passUnretained(connection.walFrames).toOpaque())

        try lock.withLock(timeout: busyTimeout) {
            connection.holdsWriteLock = true
            defer { connection.holdsWriteLock = false }
            let journalMode = try query("PRAGMA journal_mode=WAL").first?.string(0)?.lowercased()
            guard journalMode == "wal" else {
                throw StoreError(
                    .cannotOpen,
                    message: "'\(path)' cannot use SQLite's WAL mode (it reports '\(journalMode ?? "nothing")'); "
                        + "put the state folder on a local file system.",
                    sql: "PRAGMA journal_mode=WAL",
                    path: path
                )
            }
            try exec("PRAGMA synchronous=\(synchronous.rawValue); PRAGMA foreign_keys=ON")
        }
    }

    /// Creates an empty database file with mode 0600, so that SQLite (which copies the database
    /// file's mode to `-wal` and `-shm`) never creates world-readable state whatever the umask.
    private static func createFileIfMissing(_ path: String) throws {
        let fd = path.withCString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else {
            let number = errno
            // EEXIST also covers a symbolic link (O_EXCL never follows one); SQLITE_OPEN_NOFOLLOW
            // refuses it just after.
            if number == EEXIST { return }
            throw StoreError.posix(number, operation: "open", path: path)
        }
        _ = fchmod(fd, 0o600)
        close(fd)
    }

    // MARK: - Statements

    /// Runs one or more SQL statements separated by semicolons, discarding any rows.
    ///
    /// - Parameter sql: The SQL text.
    /// - Throws: ``StoreError`` mapped from SQLite, naming the statement that failed; `.other`
    ///   for a statement that writes outside ``write(_:)``.
    public func exec(_ sql: String) throws {
        let db = connection.pointer
        try sql.utf8CString.withUnsafeBufferPointer { buffer in
            guard let start = buffer.baseAddress else { return }
            let end = start + buffer.count - 1  // The terminating NUL is not SQL.
            var cursor = start
            while cursor < end {
                var handle: OpaquePointer?
                var tail: UnsafePointer<CChar>?
                let status = sqlite3_prepare_v2(db, cursor, Int32(end - cursor), &handle, &tail)
                guard status == SQLITE_OK else {
                    throw connection.error(status, sql: String(cString: cursor))
                }
                guard let handle else { break }  // Only white space or comments were left.
                let statement = Statement(connection: connection, handle: handle)
                while try statement.step() {}
                guard let tail else { break }
                cursor = tail
            }
        }
    }

    /// Compiles one SQL statement. The statement is finalized when the returned object is
    /// released.
    ///
    /// - Parameter sql: One SQL statement; text after it is ignored.
    /// - Returns: A statement ready to be bound and stepped.
    /// - Throws: ``StoreError`` (`.other` for a syntax error, naming the SQL).
    public func prepare(_ sql: String) throws -> Statement {
        var handle: OpaquePointer?
        let status = sqlite3_prepare_v3(connection.pointer, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard status == SQLITE_OK else { throw connection.error(status, sql: sql) }
        guard let handle else {
            throw StoreError(.other, message: StoreError.defaultMessage(for: .other, path: path),
                             detail: "no SQL statement in the text", sql: sql, path: path)
        }
        return Statement(connection: connection, handle: handle)
    }

    /// Returns the cached compiled statement for `sql`, compiling and caching it the first time.
    ///
    /// The statement is reset and its bindings cleared before it is returned.
    ///
    /// - Parameter sql: One SQL statement; the cache is keyed by this exact text.
    /// - Returns: The cached statement.
    /// - Throws: ``StoreError`` when the SQL does not compile.
    /// - Important: There is one statement per SQL text. Getting the same SQL again (for example
    ///   from inside a loop that steps it) resets the statement the loop is stepping. Use
    ///   ``prepare(_:)`` for statements that must stay open across such calls.
    public func cachedStatement(_ sql: String) throws -> Statement {
        if let statement = statementCache[sql] {
            statement.reset()
            statement.clearBindings()
            return statement
        }
        let statement = try prepare(sql)
        // The engine uses a small fixed set of SQL texts; the bound only stops a misuse from
        // growing without limit.
        if statementCache.count >= 256 { statementCache.removeAll() }
        statementCache[sql] = statement
        return statement
    }

    /// Runs one statement with `bindings` and returns all of its rows.
    ///
    /// - Parameters:
    ///   - sql: One SQL statement (cached, see ``cachedStatement(_:)``).
    ///   - bindings: Values for its `?` parameters, in order; `nil` binds NULL.
    /// - Returns: The rows, fully read.
    /// - Throws: ``StoreError`` mapped from SQLite.
    public func query(_ sql: String, _ bindings: (any SQLiteBindable)?...) throws -> [Row] {
        let statement = try cachedStatement(sql)
        defer { statement.reset() }
        try statement.bind(bindings)
        return try statement.rows()
    }

    /// Runs one statement with `bindings`, discarding any rows.
    ///
    /// - Parameters:
    ///   - sql: One SQL statement (cached, see ``cachedStatement(_:)``).
    ///   - bindings: Values for its `?` parameters, in order; `nil` binds NULL.
    /// - Throws: ``StoreError`` mapped from SQLite; `.other` for a write outside ``write(_:)``.
    public func run(_ sql: String, _ bindings: (any SQLiteBindable)?...) throws {
        let statement = try cachedStatement(sql)
        defer { statement.reset() }
        try statement.bind(bindings)
        while try statement.step() {}
    }

    /// The rowid of the most recent successful `INSERT` on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(connection.pointer) }

    /// The number of rows changed by the most recent `INSERT`, `UPDATE` or `DELETE`.
    public var changes: Int { Int(sqlite3_changes64(connection.pointer)) }

    // MARK: - Pragmas

    /// The schema version the application stored in the database header (`PRAGMA user_version`).
    ///
    /// - Throws: ``StoreError`` mapped from SQLite.
    public var userVersion: Int {
        get throws { try query("PRAGMA user_version").first?.int(0) ?? 0 }
    }

    /// Stores the application's schema version in the database header.
    ///
    /// Inside ``write(_:)`` it joins that transaction; otherwise it runs in its own.
    ///
    /// - Parameter version: The new version.
    /// - Throws: ``StoreError`` mapped from SQLite or from the lock.
    public func setUserVersion(_ version: Int) throws {
        let sql = "PRAGMA user_version=\(Int32(clamping: version))"
        if isInWriteTransaction {
            try exec(sql)
        } else {
            try write { try $0.exec(sql) }
        }
    }

    /// The journal mode SQLite reports (`"wal"` for read-write connections).
    ///
    /// - Throws: ``StoreError`` mapped from SQLite.
    public func journalMode() throws -> String {
        // Querying the mode compiles to OP_JournalMode, which sqlite3_stmt_readonly reports as a
        // write, although without an argument it changes nothing.
        connection.unguardedDepth += 1
        defer { connection.unguardedDepth -= 1 }
        return try query("PRAGMA journal_mode").first?.string(0) ?? ""
    }

    /// Runs `PRAGMA integrity_check` and returns its report: `"ok"` when the database is sound.
    ///
    /// - Throws: ``StoreError`` mapped from SQLite (e.g. `.corrupt` when the file is not a
    ///   database at all).
    public func integrityCheck() throws -> String {
        try query("PRAGMA integrity_check").compactMap { $0.string(0) }.joined(separator: "\n")
    }

    // MARK: - Writes and checkpoints

    /// Runs `body` in a write transaction that no other connection, in any process, can overlap.
    ///
    /// Takes the lock `<path>.lock` (waiting up to the busy timeout), runs `BEGIN IMMEDIATE`,
    /// `body` and `COMMIT`, and releases the lock. When `body` throws, or `COMMIT` fails, the
    /// transaction is rolled back and the error is rethrown. After a commit that grew the WAL by
    /// ``checkpointThreshold`` pages, a PASSIVE checkpoint runs before the lock is released (its
    /// failure is not reported: the commit is durable, and the next commit tries again).
    ///
    /// - Parameter body: The transaction's work; it receives this connection.
    /// - Returns: What `body` returns.
    /// - Throws: ``StoreError`` with `.busy` when the lock or the database stayed locked past the
    ///   busy timeout, `.readOnly` on a read-only connection, `.diskFull` / `.ioError` from
    ///   SQLite; or whatever `body` throws.
    /// - Important: Calling `write` from inside `body` is a programming error and traps.
    public func write<T>(_ body: (SQLiteDatabase) throws -> T) throws -> T {
        guard let lock = connection.lock else {
            throw StoreError(.readOnly, message: "'\(path)' was opened read-only and cannot be written.", path: path)
        }
        precondition(!isInWriteTransaction, "SQLiteDatabase.write called from inside a write transaction")
        try lock.lock(timeout: busyTimeout)
        connection.holdsWriteLock = true
        defer {
            connection.holdsWriteLock = false
            lock.unlock()
        }

        try runTransactionControl(commit: false)
        isInWriteTransaction = true
        let result: T
        do {
            result = try body(self)
            try runTransactionControl(commit: true)
        } catch {
            isInWriteTransaction = false
            rollbackIfNeeded()
            throw error
        }
        isInWriteTransaction = false

        let frames = connection.walFrames.frames
        if frames < framesAtLastCheckpoint { framesAtLastCheckpoint = 0 }  // The WAL was restarted.
        if frames - framesAtLastCheckpoint >= checkpointThreshold, let outcome = try? checkpointHoldingLock(.passive) {
            framesAtLastCheckpoint = outcome.walFrames
            automaticCheckpointCount += 1
        }
        return result
    }

    /// Copies the WAL into the database under the write lock.
    ///
    /// - Parameter mode: How much to do; `.truncate` (default) also shrinks the WAL file to zero
    ///   bytes when no reader is using it.
    /// - Returns: What the checkpoint achieved; `isComplete` is false when readers held it back
    ///   past the busy timeout (not an error: nothing is lost).
    /// - Throws: ``StoreError`` with `.busy` when the lock stayed held past the busy timeout,
    ///   `.readOnly` on a read-only connection, `.ioError` / `.diskFull` from SQLite.
    /// - Important: Calling it from inside a ``write(_:)`` body is a programming error and traps.
    @discardableResult
    public func checkpoint(_ mode: CheckpointMode = .truncate) throws -> CheckpointResult {
        guard let lock = connection.lock else {
            throw StoreError(.readOnly, message: "'\(path)' was opened read-only and cannot be checkpointed.", path: path)
        }
        precondition(!isInWriteTransaction, "SQLiteDatabase.checkpoint called from inside a write transaction")
        return try lock.withLock(timeout: busyTimeout) {
            let outcome = try checkpointHoldingLock(mode)
            framesAtLastCheckpoint = outcome.walFrames
            return outcome
        }
    }

    private func checkpointHoldingLock(_ mode: CheckpointMode) throws -> CheckpointResult {
        var walFrames: Int32 = 0
        var checkpointed: Int32 = 0
        let status = sqlite3_wal_checkpoint_v2(connection.pointer, nil, mode.rawValue, &walFrames, &checkpointed)
        switch status {
        case SQLITE_OK:
            return CheckpointResult(walFrames: Int(walFrames), checkpointedFrames: Int(checkpointed),
                                    isComplete: walFrames == checkpointed)
        case SQLITE_BUSY:
            // Readers (or a foreign writer) kept a FULL/RESTART/TRUNCATE from finishing.
            return CheckpointResult(walFrames: Int(walFrames), checkpointedFrames: Int(checkpointed),
                                    isComplete: false)
        default:
            throw connection.error(status, sql: "PRAGMA wal_checkpoint")
        }
    }

    /// Runs the compiled `BEGIN IMMEDIATE` or `COMMIT` (compiling both the first time), and
    /// resets it whatever happened, so no statement stays active between transactions.
    private func runTransactionControl(commit: Bool) throws {
        let statements: (begin: Statement, commit: Statement)
        if let compiled = transactionStatements {
            statements = compiled
        } else {
            statements = (try prepare("BEGIN IMMEDIATE"), try prepare("COMMIT"))
            transactionStatements = statements
        }
        let statement = commit ? statements.commit : statements.begin
        defer { statement.reset() }
        while try statement.step() {}
    }

    private func rollbackIfNeeded() {
        // SQLite rolls back by itself after some errors (e.g. SQLITE_FULL during COMMIT).
        guard sqlite3_get_autocommit(connection.pointer) == 0 else { return }
        try? exec("ROLLBACK")
    }
}

// MARK: - The connection handle

/// Receives the WAL size from the `sqlite3_wal_hook` callback, which runs synchronously inside
/// `COMMIT` on the thread that owns the connection.
fileprivate final class SQLiteWALFrameCounter {
    var frames = 0
}

/// Owns the `sqlite3*` pointer. Every ``Statement`` holds a strong reference, so the connection
/// is closed (under the write lock) only after its last statement has been finalized.
fileprivate final class SQLiteConnectionHandle {
    let pointer: OpaquePointer
    let path: String
    /// The cross-process write lock; nil for read-only connections.
    let lock: FileLock?
    let busyTimeout: Duration
    let walFrames = SQLiteWALFrameCounter()
    /// True while this connection holds `lock`: only then may a statement write.
    var holdsWriteLock = false
    /// Above zero while running an internal statement that SQLite reports as writing but that
    /// does not write (e.g. querying the journal mode).
    var unguardedDepth = 0

    init(pointer: OpaquePointer, path: String, lock: FileLock?, busyTimeout: Duration) {
        self.pointer = pointer
        self.path = path
        self.lock = lock
        self.busyTimeout = busyTimeout
    }

    deinit {
        guard let lock else {
            sqlite3_close(pointer)
            return
        }
        // The last close of a WAL database checkpoints it: do it under the lock, or not at all
        // (see the block comment at the top of this file).
        guard (try? lock.lock(timeout: busyTimeout)) != nil else { return }
        sqlite3_close(pointer)
        lock.unlock()
    }

    /// Refuses a statement that would write while the write lock is not held.
    func checkMayWrite(_ statement: OpaquePointer, sql: @autoclosure () -> String) throws {
        guard lock != nil, !holdsWriteLock, unguardedDepth == 0, sqlite3_stmt_readonly(statement) == 0 else { return }
        throw StoreError(
            .other,
            message: "A statement tried to write to '\(path)' outside SQLiteDatabase.write; this is a bug in omnibase-agents.",
            detail: "writes must run inside write { } so they hold \(path).lock",
            sql: sql(),
            path: path
        )
    }

    /// The store error for a failed SQLite call, with SQLite's current message.
    func error(_ status: Int32, sql: String?) -> StoreError {
        StoreError.sqlite(status, sqliteMessage: String(cString: sqlite3_errmsg(pointer)), sql: sql, path: path,
                          systemErrno: sqlite3_system_errno(pointer))
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded down.
    fileprivate var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

// MARK: - Statements

/// A compiled SQL statement of one ``SQLiteDatabase``.
///
/// Parameters are bound by 1-based index (SQLite's convention); columns are read by 0-based
/// index. The statement is finalized when the object is released; it keeps its connection open
/// until then.
///
/// - Important: Not `Sendable`: it belongs to the owner of its connection.
public final class Statement {
    private let connection: SQLiteConnectionHandle
    private let handle: OpaquePointer
    /// The number of parameters (the largest index).
    private let parameterCount: Int
    /// Memory the statement owns for the texts of its current bindings (``bindOwned(_:at:)``):
    /// `textCapacity` bytes, of which `textUsed` are taken. It is freed or replaced only when no
    /// binding points into it (finalized, or every parameter cleared first).
    private var textBuffer: UnsafeMutableRawPointer?
    private var textCapacity = 0
    private var textUsed = 0

    fileprivate init(connection: SQLiteConnectionHandle, handle: OpaquePointer) {
        self.connection = connection
        self.handle = handle
        parameterCount = Int(sqlite3_bind_parameter_count(handle))
    }

    deinit {
        sqlite3_finalize(handle)
        textBuffer?.deallocate()
    }

    /// The statement's SQL text.
    public var sql: String { String(cString: sqlite3_sql(handle)) }

    // MARK: Binding

    /// Binds `value` to the parameter at `index` (1-based); `nil` binds NULL.
    ///
    /// Text and blobs are copied, so the arguments need not outlive the call.
    ///
    /// - Throws: ``StoreError`` (`.other` for an index out of range).
    public func bind(_ value: (any SQLiteBindable)?, at index: Int) throws {
        try bind(value?.sqliteValue ?? .null, at: index)
    }

    /// Binds `value` to the parameter at `index` (1-based), without boxing it.
    ///
    /// - Throws: ``StoreError`` (`.other` for an index out of range).
    public func bind<Value: SQLiteBindable>(_ value: Value, at index: Int) throws {
        try bind(value.sqliteValue, at: index)
    }

    private func bind(_ value: SQLiteValue, at index: Int) throws {
        let position = Int32(clamping: index)
        let status: Int32
        switch value {
        case .null:
            status = sqlite3_bind_null(handle, position)
        case .integer(let integer):
            status = sqlite3_bind_int64(handle, position, integer)
        case .real(let real):
            status = sqlite3_bind_double(handle, position, real)
        case .text(var text):
            // withUTF8 keeps embedded NULs; an empty buffer may have no address, and a NULL
            // pointer would bind SQL NULL, so "" gets a static empty C string.
            status = text.withUTF8 { utf8 in
                if let base = utf8.baseAddress {
                    return base.withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                        sqlite3_bind_text64(handle, position, $0, UInt64(utf8.count), sqliteTransient, UInt8(SQLITE_UTF8))
                    }
                }
                return sqlite3_bind_text(handle, position, "", 0, sqliteTransient)
            }
        case .blob(let bytes):
            status = bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress {
                    return sqlite3_bind_blob64(handle, position, base, UInt64(raw.count), sqliteTransient)
                }
                return sqlite3_bind_zeroblob(handle, position, 0)
            }
        }
        guard status == SQLITE_OK else { throw connection.error(status, sql: sql) }
    }

    /// Clears all bindings, then binds `values` to parameters 1, 2, … in order.
    ///
    /// - Throws: ``StoreError`` (`.other` when there are more values than parameters).
    public func bind(_ values: [(any SQLiteBindable)?]) throws {
        clearBindings()
        for (offset, value) in values.enumerated() {
            try bind(value, at: offset + 1)
        }
    }

    /// Sets every parameter back to NULL.
    public func clearBindings() {
        sqlite3_clear_bindings(handle)
    }

    /// Resets the statement and makes room for a new set of bindings whose texts take at most
    /// `textBytes` bytes together, for ``bindOwned(_:at:)``. Bind every parameter after it (the
    /// texts of earlier bindings are overwritten).
    public func beginBindings(textBytes: Int) {
        reset()
        if textBytes > textCapacity {
            // No binding may point into the buffer once it is freed.
            sqlite3_clear_bindings(handle)
            textBuffer?.deallocate()
            textCapacity = max(textBytes, 2 * textCapacity, 256)
            textBuffer = UnsafeMutableRawPointer.allocate(byteCount: textCapacity, alignment: 1)
        }
        textUsed = 0
    }

    /// Binds `value` as ``bind(_:at:)`` does, except that a text is copied into memory the
    /// statement owns, made room for by ``beginBindings(textBytes:)``, and bound there
    /// (`SQLITE_STATIC`): SQLite otherwise allocates a copy of every bound text and frees it at
    /// the next bind of the parameter, an allocation per text per run of the statement. A text
    /// that does not fit is bound as ``bind(_:at:)`` binds it.
    ///
    /// - Throws: ``StoreError`` (`.other` for an index out of range).
    @inlinable
    public func bindOwned<Value: SQLiteBindable>(_ value: Value, at index: Int) throws {
        try bindOwned(value.sqliteValue, at: index)
    }

    /// ``bindOwned(_:at:)-(Value,_)`` of a value already converted.
    public func bindOwned(_ sqliteValue: SQLiteValue, at index: Int) throws {
        guard case .text(var text) = sqliteValue, let textBuffer else { return try bind(sqliteValue, at: index) }
        let count = text.utf8.count
        guard textUsed + count <= textCapacity else { return try bind(sqliteValue, at: index) }
        let start = textBuffer + textUsed
        text.withUTF8 { utf8 in
            if let base = utf8.baseAddress { start.copyMemory(from: base, byteCount: count) }
        }
        textUsed += count
        // The buffer outlives the binding: it is replaced only after every binding is cleared.
        let status = sqlite3_bind_text64(handle, Int32(clamping: index), start.assumingMemoryBound(to: CChar.self),
                                         UInt64(count), nil, UInt8(SQLITE_UTF8))
        guard status == SQLITE_OK else { throw connection.error(status, sql: sql) }
    }

    // MARK: Stepping

    /// Advances to the next row.
    ///
    /// - Returns: `true` when a row is available, `false` when the statement has finished.
    /// - Throws: ``StoreError`` mapped from SQLite (the statement is reset); `.other` when the
    ///   statement would write outside ``SQLiteDatabase/write(_:)``.
    public func step() throws -> Bool {
        try connection.checkMayWrite(handle, sql: sql)
        let status = sqlite3_step(handle)
        switch status {
        case SQLITE_ROW:
            return true
        case SQLITE_DONE:
            return false
        default:
            let error = connection.error(status, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// The rows the last completed `INSERT`, `UPDATE` or `DELETE` on this statement's connection
    /// changed (read it right after running the statement).
    public var changes: Int { Int(sqlite3_changes64(sqlite3_db_handle(handle))) }

    /// Rewinds the statement so it can run again; bindings are kept.
    public func reset() {
        // The return value repeats the last step's error, which step() has already reported.
        sqlite3_reset(handle)
    }

    /// Binds `bindings`, then runs the statement to completion, discarding rows.
    ///
    /// - Throws: ``StoreError`` mapped from SQLite.
    public func run(_ bindings: (any SQLiteBindable)?...) throws {
        reset()
        try bind(bindings)
        defer { reset() }
        while try step() {}
    }

    /// Binds `values` to parameters 1, 2, … (all others NULL), runs the statement to completion
    /// discarding rows, and resets it: as ``run(_:)``, without boxing each value or allocating
    /// an array of them, and with texts bound by ``bindOwned(_:at:)`` (the store writer's
    /// statements run several times per step).
    ///
    /// - Throws: ``StoreError`` mapped from SQLite.
    ///
    /// Inlinable, so that a caller in another module gets it specialized for its values' types:
    /// generic, each value went through witness tables and value-witness copies (the store
    /// writer runs it several times per step). What it inlines is only the loop over the
    /// values; the statement's state stays behind ``bindOwned(_:at:)-(SQLiteValue,_)`` and
    /// ``finishExecute(bound:)``.
    @inlinable
    public func execute<each Value: SQLiteBindable>(_ values: repeat each Value) throws {
        var textBytes = 0
        for value in repeat each values { textBytes += value.textByteCount }
        beginBindings(textBytes: textBytes)
        var index = 0
        do {
            for value in repeat each values {
                index += 1
                try bindOwned(value.sqliteValue, at: index)
            }
        } catch {
            reset()
            throw error
        }
        try finishExecute(bound: index)
    }

    /// The end of ``execute(_:)``: parameters after the first `bound` set to NULL, the
    /// statement run to completion, discarding rows, and reset.
    public func finishExecute(bound: Int) throws {
        defer { reset() }
        // Only parameters left over are cleared: clearing frees the buffer each bound text was
        // copied into, which the next bind of the same parameter would allocate again.
        if bound < parameterCount { try bindNull(from: bound + 1) }
        while try step() {}
    }

    /// Binds NULL to the parameters from `first` on.
    private func bindNull(from first: Int) throws {
        for index in first...parameterCount { try bind(SQLiteValue.null, at: index) }
    }

    /// Steps through the remaining rows and returns them.
    ///
    /// - Throws: ``StoreError`` mapped from SQLite.
    public func rows() throws -> [Row] {
        var rows: [Row] = []
        while try step() { rows.append(row) }
        return rows
    }

    // MARK: Columns

    /// The number of columns in a result row.
    public var columnCount: Int { Int(sqlite3_column_count(handle)) }

    /// The name of column `column` (0-based).
    public func columnName(_ column: Int) -> String {
        sqlite3_column_name(handle, Int32(column)).map { String(cString: $0) } ?? ""
    }

    /// Whether column `column` (0-based) of the current row is NULL.
    public func isNull(_ column: Int) -> Bool {
        sqlite3_column_type(handle, Int32(column)) == SQLITE_NULL
    }

    /// Column `column` (0-based) as an `Int` (NULL reads as 0, as SQLite converts).
    public func int(_ column: Int) -> Int { Int(sqlite3_column_int64(handle, Int32(column))) }

    /// Column `column` (0-based) as an `Int64` (NULL reads as 0).
    public func int64(_ column: Int) -> Int64 { sqlite3_column_int64(handle, Int32(column)) }

    /// Column `column` (0-based) as a `Double` (NULL reads as 0).
    public func double(_ column: Int) -> Double { sqlite3_column_double(handle, Int32(column)) }

    /// Column `column` (0-based) as text, or nil when it is NULL.
    public func string(_ column: Int) -> String? {
        let index = Int32(column)
        guard sqlite3_column_type(handle, index) != SQLITE_NULL,
              let text = sqlite3_column_text(handle, index) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    /// Column `column` (0-based) as bytes, or nil when it is NULL.
    public func blob(_ column: Int) -> [UInt8]? {
        let index = Int32(column)
        guard sqlite3_column_type(handle, index) != SQLITE_NULL else { return nil }
        guard let bytes = sqlite3_column_blob(handle, index) else { return [] }  // A zero-length blob.
        let count = Int(sqlite3_column_bytes(handle, index))
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// Column `column` (0-based) with its SQLite storage class.
    public func value(_ column: Int) -> SQLiteValue {
        let index = Int32(column)
        switch sqlite3_column_type(handle, index) {
        case SQLITE_INTEGER: return .integer(int64(column))
        case SQLITE_FLOAT: return .real(double(column))
        case SQLITE_TEXT: return .text(string(column) ?? "")
        case SQLITE_BLOB: return .blob(blob(column) ?? [])
        default: return .null
        }
    }

    /// The current row, copied out of SQLite.
    public var row: Row { Row(values: (0..<columnCount).map(value)) }
}

/// `SQLITE_TRANSIENT`: SQLite copies bound text and blobs before the bind call returns. (The C
/// macro is a cast of -1 to a function pointer, which Swift does not import.)
private var sqliteTransient: sqlite3_destructor_type {
    unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
}

// MARK: - Values and rows

/// A value with one of SQLite's storage classes.
public enum SQLiteValue: Sendable, Hashable {
    /// SQL NULL.
    case null
    /// A 64-bit signed integer.
    case integer(Int64)
    /// An IEEE 754 double.
    case real(Double)
    /// UTF-8 text (it may contain NUL characters).
    case text(String)
    /// Bytes, possibly none.
    case blob([UInt8])
}

/// A Swift value that can be bound to a statement parameter.
public protocol SQLiteBindable {
    /// The value as SQLite stores it.
    var sqliteValue: SQLiteValue { get }
}

extension SQLiteBindable {
    /// The UTF-8 bytes of the value when it is a text, else 0 (see
    /// ``Statement/beginBindings(textBytes:)``).
    @inlinable
    public var textByteCount: Int {
        if case .text(let text) = sqliteValue { return text.utf8.count }
        return 0
    }
}

extension SQLiteValue: SQLiteBindable {
    /// Itself.
    @inlinable
    public var sqliteValue: SQLiteValue { self }
}

extension Int: SQLiteBindable {
    /// A 64-bit integer.
    @inlinable
    public var sqliteValue: SQLiteValue { .integer(Int64(self)) }
}

extension Int64: SQLiteBindable {
    /// An integer.
    @inlinable
    public var sqliteValue: SQLiteValue { .integer(self) }
}

extension Int32: SQLiteBindable {
    /// An integer.
    @inlinable
    public var sqliteValue: SQLiteValue { .integer(Int64(self)) }
}

extension Bool: SQLiteBindable {
    /// `true` is stored as 1, `false` as 0.
    @inlinable
    public var sqliteValue: SQLiteValue { .integer(self ? 1 : 0) }
}

extension Double: SQLiteBindable {
    /// A real.
    @inlinable
    public var sqliteValue: SQLiteValue { .real(self) }
}

extension String: SQLiteBindable {
    /// Text.
    @inlinable
    public var sqliteValue: SQLiteValue { .text(self) }
}

extension Array: SQLiteBindable where Element == UInt8 {
    /// A blob.
    @inlinable
    public var sqliteValue: SQLiteValue { .blob(self) }
}

extension Optional: SQLiteBindable where Wrapped: SQLiteBindable {
    /// `nil` binds NULL.
    @inlinable
    public var sqliteValue: SQLiteValue { self?.sqliteValue ?? .null }
}

/// One result row, copied out of SQLite, so it can outlive its statement and cross actors.
///
/// Columns are read by 0-based index, with SQLite's conversions: NULL reads as 0 for numbers
/// and nil for text and blobs.
public struct Row: Sendable, Hashable {
    /// The row's values, in column order.
    public let values: [SQLiteValue]

    /// Creates a row from its values.
    public init(values: [SQLiteValue]) { self.values = values }

    /// The number of columns.
    public var count: Int { values.count }

    /// The value of column `column`.
    public subscript(column: Int) -> SQLiteValue { values[column] }

    /// Whether column `column` is NULL.
    public func isNull(_ column: Int) -> Bool { values[column] == .null }

    /// Column `column` as an `Int` (see ``int64(_:)``).
    public func int(_ column: Int) -> Int { Int(int64(column)) }

    /// Column `column` as an `Int64`: integers as they are, reals truncated (0 when out of
    /// range), numeric text parsed, anything else 0.
    public func int64(_ column: Int) -> Int64 {
        switch values[column] {
        case .integer(let value): value
        case .real(let value): Int64(exactly: value.rounded(.towardZero)) ?? 0
        case .text(let value): Int64(value) ?? 0
        case .null, .blob: 0
        }
    }

    /// Column `column` as a `Double`: numbers as they are, numeric text parsed, anything else 0.
    public func double(_ column: Int) -> Double {
        switch values[column] {
        case .integer(let value): Double(value)
        case .real(let value): value
        case .text(let value): Double(value) ?? 0
        case .null, .blob: 0
        }
    }

    /// Column `column` as text, or nil when it is NULL. Numbers are formatted; blobs decoded as
    /// UTF-8.
    public func string(_ column: Int) -> String? {
        switch values[column] {
        case .null: nil
        case .integer(let value): String(value)
        case .real(let value): String(value)
        case .text(let value): value
        case .blob(let value): String(decoding: value, as: UTF8.self)
        }
    }

    /// Column `column` as bytes, or nil when it is NULL. Text gives its UTF-8 bytes.
    public func blob(_ column: Int) -> [UInt8]? {
        switch values[column] {
        case .null: nil
        case .blob(let value): value
        case .text(let value): Array(value.utf8)
        case .integer, .real: string(column).map { Array($0.utf8) }
        }
    }
}
