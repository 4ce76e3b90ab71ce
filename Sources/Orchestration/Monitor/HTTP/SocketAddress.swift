import Glibc

/// An IPv4 or IPv6 address and port, as the server binds to it and reads it back.
struct SocketAddress {
    private var storage = sockaddr_storage()
    /// `AF_INET` or `AF_INET6`.
    let family: Int32

    /// Parses an IP address literal (`127.0.0.1`, `::1`, `0.0.0.0`; `localhost` is 127.0.0.1).
    /// - Throws: ``HTTPServerError`` for anything else (host names are not resolved).
    init(host: String, port: UInt16) throws(HTTPServerError) {
        let literal = host == "localhost" ? "127.0.0.1" : host
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, literal, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            family = AF_INET
            withUnsafeBytes(of: v4) { source in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
            }
            return
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, literal, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            family = AF_INET6
            withUnsafeBytes(of: v6) { source in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
            }
            return
        }
        throw HTTPServerError("\"\(host)\" is not an IP address (use e.g. 127.0.0.1, ::1 or 0.0.0.0)")
    }

    private init(storage: sockaddr_storage) {
        self.storage = storage
        family = Int32(storage.ss_family)
    }

    /// The local address of a socket.
    static func local(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0, storage.ss_family == sa_family_t(AF_INET) || storage.ss_family == sa_family_t(AF_INET6) else { return nil }
        return SocketAddress(storage: storage)
    }

    /// Calls `body` with the `sockaddr` pointer and length.
    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let length = family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size
        return withUnsafePointer(to: storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(length)) }
        }
    }

    /// The port.
    var port: UInt16 {
        withUnsafeBytes(of: storage) { raw in
            family == AF_INET ? UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
                : UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
        }
    }

    /// The address as text (`127.0.0.1`, `::1`).
    var hostText: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                var address = raw.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count))
            } else {
                var address = raw.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
            }
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// What a `Host` field names this address by: `127.0.0.1:8080`, `[::1]:8080`.
    var hostHeader: String {
        (family == AF_INET6 ? "[\(hostText)]" : hostText) + ":\(port)"
    }

    /// `127.0.0.1:8080` or `[::1]:8080`, for messages.
    var display: String { hostHeader }

    /// The wildcard address (`0.0.0.0`, `::`): every address of this machine.
    var isUnspecified: Bool {
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET { return raw.load(as: sockaddr_in.self).sin_addr.s_addr == 0 }
            return withUnsafeBytes(of: raw.load(as: sockaddr_in6.self).sin6_addr) { $0.allSatisfy { $0 == 0 } }
        }
    }

    /// The first address of `family` on an interface that is up and not loopback (`getifaddrs`
    /// order), skipping IPv6 link-local ones (they need a zone to be opened); nil when none.
    static func interfaceAddress(family: Int32) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var entry: UnsafeMutablePointer<ifaddrs>? = first
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            let flags = Int32(bitPattern: current.pointee.ifa_flags)
            guard let raw = current.pointee.ifa_addr, Int32(raw.pointee.sa_family) == family,
                  flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0 else { continue }
            var storage = sockaddr_storage()
            let length = family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: length)) }
            let address = SocketAddress(storage: storage)
            if family == AF_INET6 {
                let bytes = withUnsafeBytes(of: storage) { withUnsafeBytes(of: $0.load(as: sockaddr_in6.self).sin6_addr) { Array($0) } }
                if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { continue }
            }
            guard !address.isLoopback else { continue }
            return address.hostText
        }
        return nil
    }

    /// 127.0.0.0/8 or ::1 (or an IPv4-mapped loopback).
    var isLoopback: Bool {
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                let address = UInt32(bigEndian: raw.load(as: sockaddr_in.self).sin_addr.s_addr)
                return address >> 24 == 127
            }
            let bytes = withUnsafeBytes(of: raw.load(as: sockaddr_in6.self).sin6_addr) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
            return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
        }
    }
}
