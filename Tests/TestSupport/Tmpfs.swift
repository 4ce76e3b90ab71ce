import Foundation
import Glibc

// A small file system of a fixed size, for tests of a full disk: real `ENOSPC` from the kernel,
// not a simulated write error. Needs root with CAP_SYS_ADMIN (``canMountTmpfs``).

// `mount(2)` flags (sys/mount.h), spelled out so the tests do not depend on how Glibc imports them.
private let msReadOnly: UInt = 1
private let msRemount: UInt = 32
private let mntDetach: Int32 = 2

/// Mounts a tmpfs at `path` (created if needed).
@discardableResult
public func mountTmpfs(_ path: String, options: String, readOnly: Bool = false) -> Bool {
    mkdir(path, 0o700)
    return mount("tmpfs", path, "tmpfs", readOnly ? msReadOnly : 0, options) == 0
}

/// Mounts the tmpfs at `path` again with other options (a new size, read-only or not).
public func remount(_ path: String, options: String, readOnly: Bool) -> Bool {
    mount("tmpfs", path, "tmpfs", msRemount | (readOnly ? msReadOnly : 0), options) == 0
}

/// Unmounts `path` (lazily when it is busy).
public func unmount(_ path: String) {
    if umount2(path, 0) != 0 { _ = umount2(path, mntDetach) }
}

/// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, not in a restricted container).
public let canMountTmpfs: Bool = {
    var template = Array((NSTemporaryDirectory() + "omnibase-mount-probe-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { return false }
    let path = String(cString: made)
    defer { rmdir(path) }
    guard mountTmpfs(path, options: "size=64k,mode=0700") else { return false }
    let remounts = remount(path, options: "size=64k,mode=0700", readOnly: true)
    unmount(path)
    return remounts
}()
