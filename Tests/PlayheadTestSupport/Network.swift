import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Network helpers for tests. Everything binds to 127.0.0.1.
public enum TestNetwork {
    /// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it) and was not handed
    /// out before in this process, so servers that tests start side by side never get the same port.
    public static func freePort() throws -> Int {
        for _ in 0..<100 {
            let port = try kernelChosenPort()
            if claim(port) { return port }
        }
        throw TestSupportError("no port that was not handed out already")
    }

    /// Ports handed out in this process (by `freePort` and by helpers that pick their own, such as
    /// `SeaweedFS`): servers starting side by side each check that a port is free before any of
    /// them binds it, so a port must never be handed out twice.
    private static let handedOut = NIOLockedValueBox<Set<Int>>([])

    /// Marks `port` as handed out; false when it was already.
    static func claim(_ port: Int) -> Bool {
        handedOut.withLockedValue { $0.insert(port).inserted }
    }

    private static func kernelChosenPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        guard withLoopback(port: 0, { bind(fd, $0, $1) }) == 0 else { throw TestSupportError("bind() failed: errno \(errno)") }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether a TCP socket can be bound to 127.0.0.1:`port` now.
    static func canBind(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withLoopback(port: port) { bind(fd, $0, $1) } == 0
    }

    /// A socket on 127.0.0.1 that listens and never accepts: the kernel completes connections and
    /// takes what is sent, and no answer ever comes (a peer that hangs). Its descriptor (close it
    /// when done) and port.
    public static func silentListener() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        guard withLoopback(port: 0, { bind(fd, $0, $1) }) == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw TestSupportError("bind() or listen() failed: errno \(errno)")
        }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func isListening(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withLoopback(port: port) { connect(fd, $0, $1) } == 0
    }

    /// Calls `body` with the socket address 127.0.0.1:`port` and its length.
    private static func withLoopback(port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Waits until 127.0.0.1:`port` accepts connections.
    public static func waitForPort(_ port: Int, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !isListening(port: port) {
            if ContinuousClock.now > deadline { throw TestSupportError("nothing listens on 127.0.0.1:\(port)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
