import Foundation
import Glibc
import Testing
@testable import Orchestration

/// A fresh folder under /tmp, removed (with everything in it) when the test body returns.
private func withScratchFolder<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/omnibase-state-XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    let folder = String(cString: try #require(created))
    defer { try? FileManager.default.removeItem(atPath: folder) }
    return try body(folder)
}

/// Runs `body` with the process umask set to `mask`, then restores it. The suite is serialized
/// because the umask is process-wide.
private func withUmask<T>(_ mask: mode_t, _ body: () throws -> T) rethrows -> T {
    let previous = umask(mask)
    defer { umask(previous) }
    return try body()
}

/// The permission bits of `path` (not following a final symbolic link).
private func permissions(_ path: String) -> mode_t? {
    var status = stat()
    return lstat(path, &status) == 0 ? status.st_mode & 0o7777 : nil
}

private func contents(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
}

@Suite("StateDirectory", .serialized)
struct StateDirectoryTests {
    @Test("the folder and its missing parents are created 0700 under umask 0")
    func folderIsPrivate() throws {
        try withScratchFolder { folder in
            let state = try withUmask(0) { try StateDirectory(path: folder + "/a/b/.state") }
            #expect(state.path == folder + "/a/b/.state")
            #expect(permissions(folder + "/a") == 0o700)
            #expect(permissions(folder + "/a/b/.state") == 0o700)
            #expect(state.databasePath == folder + "/a/b/.state/runs.db")
            #expect(try state.runDirectory("r-1") == folder + "/a/b/.state/runs/r-1")

            // An existing folder is left as it is, unless others may write to it.
            #expect(chmod(state.path, 0o755) == 0)
            _ = try StateDirectory(path: state.path)
            #expect(permissions(state.path) == 0o755)
            #expect(chmod(state.path, 0o777) == 0)
            let error = #expect(throws: StoreError.self) { _ = try StateDirectory(path: state.path) }
            #expect(error?.code == .insecurePermissions)
            #expect(error?.exitCode == 5)
            #expect(permissions(state.path) == 0o777)
        }
    }

    @Test("a relative path is made absolute against the current directory")
    func relativePathIsAbsolute() throws {
        try withScratchFolder { folder in
            let cwd = FileManager.default.currentDirectoryPath
            let climb = String(repeating: "../", count: cwd.split(separator: "/").count)
            let state = try StateDirectory(path: climb + folder.dropFirst() + "/./relative/")
            #expect(state.path == cwd + "/" + climb.dropLast() + folder + "/relative")
            #expect(permissions(folder + "/relative") == 0o700)
        }
    }

    @Test("state files are 0600 and folders 0700 under umask 0, database files included")
    func filesArePrivate() throws {
        try withScratchFolder { folder in
            try withUmask(0) {
                let state = try StateDirectory(path: folder + "/.state")
                let logs = try state.ensureSubdirectory("runs/r-1/logs")
                #expect(logs == folder + "/.state/runs/r-1/logs")
                #expect(permissions(folder + "/.state/runs") == 0o700)
                #expect(permissions(logs) == 0o700)

                let fd = try state.createFile("runs/r-1/logs/build.1.out")
                #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
                close(fd)
                #expect(permissions(logs + "/build.1.out") == 0o600)

                let events = try state.openForAppend("runs/r-1/events.jsonl")
                try events.write(contentsOf: Data("{\"seq\":1}\n".utf8))
                try events.close()
                let again = try state.openForAppend("runs/r-1/events.jsonl")
                try again.write(contentsOf: Data("{\"seq\":2}\n".utf8))
                try again.close()
                #expect(contents(folder + "/.state/runs/r-1/events.jsonl") == "{\"seq\":1}\n{\"seq\":2}\n")
                #expect(permissions(folder + "/.state/runs/r-1/events.jsonl") == 0o600)

                try state.writeFileAtomically("runs/r-1/plan.json", Array("{}".utf8))
                #expect(permissions(folder + "/.state/runs/r-1/plan.json") == 0o600)

                let db = try SQLiteDatabase(path: state.databasePath)
                try db.write { try $0.exec("CREATE TABLE t(x)") }
                for suffix in ["", "-wal", "-shm", ".lock"] {
                    #expect(permissions(state.databasePath + suffix) == 0o600, "runs.db\(suffix)")
                }
            }
        }
    }

    @Test("a symbolic link in place of a state file is refused (exit 5) and its target is untouched")
    func symlinkedStateFileIsRefused() throws {
        try withScratchFolder { folder in
            let state = try StateDirectory(path: folder + "/.state")
            try state.ensureSubdirectory("runs/r-1")
            let precious = folder + "/precious.txt"
            try "keep me".write(toFile: precious, atomically: false, encoding: .utf8)
            let link = folder + "/.state/runs/r-1/events.jsonl"
            #expect(symlink(precious, link) == 0)

            let attempts: [(String, () throws -> Void)] = [
                ("openForAppend", { _ = try state.openForAppend("runs/r-1/events.jsonl") }),
                ("createFile", { close(try state.createFile("runs/r-1/events.jsonl")) }),
                ("writeFileAtomically", { try state.writeFileAtomically("runs/r-1/events.jsonl", Array("x".utf8)) }),
            ]
            for (name, attempt) in attempts {
                let error = #expect(throws: StoreError.self, "\(name)") { try attempt() }
                #expect(error?.code == .symlinkRefused, "\(name)")
                #expect(error?.exitCode == 5, "\(name)")
            }
            #expect(contents(precious) == "keep me")
            var status = stat()
            #expect(lstat(link, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK, "the link itself was replaced")

            // A symbolic link for the database is refused when the folder is opened.
            #expect(symlink(precious, state.databasePath) == 0)
            #expect(throws: StoreError(.symlinkRefused, message: "")) { _ = try StateDirectory(path: state.path) }
            #expect(contents(precious) == "keep me")
        }
    }

    /// The fair write lock's queue file is a state file too: a link there is refused when the
    /// folder is opened, and by the lock itself (exit 5), its target untouched.
    @Test("a symbolic link in place of the write lock's queue file is refused")
    func symlinkedLockQueueIsRefused() throws {
        try withScratchFolder { folder in
            let state = try StateDirectory(path: folder + "/.state")
            let precious = folder + "/precious.txt"
            try "keep me".write(toFile: precious, atomically: false, encoding: .utf8)
            #expect(symlink(precious, state.path + "/runs.db.lock-wait") == 0)
            let error = #expect(throws: StoreError.self) { _ = try StateDirectory(path: state.path) }
            #expect(error?.code == .symlinkRefused)
            #expect(error?.exitCode == 5)
            let lockError = #expect(throws: StoreError.self) { _ = try FileLock(path: state.path + "/runs.db.lock", fair: true) }
            #expect(lockError?.code == .symlinkRefused)
            #expect(contents(precious) == "keep me")
        }
    }

    @Test("a symbolic link as the state folder, or as a folder inside it, is refused")
    func symlinkedFolderIsRefused() throws {
        try withScratchFolder { folder in
            try FileManager.default.createDirectory(atPath: folder + "/elsewhere", withIntermediateDirectories: false)
            #expect(symlink(folder + "/elsewhere", folder + "/.state") == 0)
            let error = #expect(throws: StoreError.self) { _ = try StateDirectory(path: folder + "/.state") }
            #expect(error?.code == .symlinkRefused)
            #expect(error?.exitCode == 5)

            // A link below the folder, met on the way to a file.
            let state = try StateDirectory(path: folder + "/real")
            #expect(symlink(folder + "/elsewhere", folder + "/real/runs") == 0)
            #expect(throws: StoreError(.symlinkRefused, message: "")) { _ = try StateDirectory(path: state.path) }
            #expect(throws: StoreError(.symlinkRefused, message: "")) { try state.ensureSubdirectory("runs/r-1") }
            #expect(throws: StoreError(.symlinkRefused, message: "")) { _ = try state.openForAppend("runs/r-1/x") }
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/elsewhere") == [])
        }
    }

    @Test("an atomic write replaces the content and leaves no temporary file")
    func atomicWriteLeavesNoTemporaryFiles() throws {
        try withScratchFolder { folder in
            let state = try StateDirectory(path: folder + "/.state")
            try state.writeFileAtomically("snapshot.json", Array("first".utf8))
            try state.writeFileAtomically("snapshot.json", Array("second, longer".utf8))
            try state.writeFileAtomically("runs/r-1/empty", [])
            #expect(contents(folder + "/.state/snapshot.json") == "second, longer")
            #expect(contents(folder + "/.state/runs/r-1/empty") == "")
            #expect(try FileManager.default.contentsOfDirectory(atPath: state.path).sorted() == ["runs", "snapshot.json"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: state.path + "/runs/r-1") == ["empty"])
        }
    }

    @Test("paths that leave the folder are refused with exit 5", arguments: ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/"])
    func unsafePathsAreRefused(_ relativePath: String) throws {
        try withScratchFolder { folder in
            let state = try StateDirectory(path: folder + "/.state")
            let error = #expect(throws: StoreError.self) { _ = try state.openForAppend(relativePath) }
            #expect(error?.code == .unsafePath)
            #expect(error?.exitCode == 5)
            #expect(throws: StoreError(.unsafePath, message: "")) { _ = try state.runDirectory(relativePath) }
        }
    }

    @Test("store error codes map to SPEC exit codes and compare by code")
    func exitCodes() {
        let storage: [StoreError.Code] = [.diskFull, .ioError, .corrupt, .readOnly, .cannotOpen, .busy]
        #expect(storage.allSatisfy { $0.exitCode == 74 })
        #expect(StoreError.Code.incompatibleSchema.exitCode == 4)
        #expect(StoreError.Code.symlinkRefused.exitCode == 5)
        #expect(StoreError(.busy, message: "a") == StoreError(.busy, message: "b", path: "/x"))
        #expect(StoreError(.busy, message: "a") != StoreError(.corrupt, message: "a"))
        #expect(StoreError.posix(ENOSPC, operation: "write", path: "/x").code == .diskFull)
    }
}
