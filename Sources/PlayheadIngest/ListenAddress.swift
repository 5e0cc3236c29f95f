import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Why the HTTP server cannot listen on its address, in words an operator can act on.
public struct ListenError: Error, Sendable, CustomStringConvertible {
    public var description: String

    /// From the error of a failed bind (or of resolving `host`).
    public init(host: String, port: Int, error: any Error) {
        let address = "\(ListenAddress.urlHost(host)):\(port)"
        guard let ioError = error as? IOError else {
            // NIO's resolver errors and the like: their text names the host already.
            self.init(description: "cannot listen on \(address): \(error)")
            return
        }
        let code = ioError.errnoCode
        let hint: String
        switch code {
        case EADDRINUSE: hint = "another process holds this port: stop it, or choose another with --port"
        case EACCES where port < 1024: hint = "ports below 1024 need privileges: choose another with --port"
        case EADDRNOTAVAIL: hint = "--host is not an address of this machine"
        default: hint = "errno \(code)"
        }
        self.init(description: "cannot listen on \(address): \(String(cString: strerror(code))) (\(hint))")
    }

    private init(description: String) { self.description = description }
}

/// Checks at start, before the log and the lake are opened, that the HTTP server's address can be
/// bound: a port in use made `serve` create its data folders and start its lake writer before it
/// failed, with NIO's `bind(descriptor:ptr:bytes:)` for a message (until 2026-12-05). The server's
/// own bind, moments later, can still fail (another process may take the port in between), and then
/// says the same.
public enum ListenAddress {
    /// `host` as a URL's host: an IPv6 address in brackets (`[::1]`).
    public static func urlHost(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }

    /// Throws ``ListenError`` when `host:port` cannot be bound now. Port 0 (any free port) is not checked.
    public static func check(host: String, port: Int) throws(ListenError) {
        guard port != 0 else { return }
        let address: SocketAddress
        do {
            address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            throw ListenError(host: host, port: port, error: error)
        }
        let fd = socket(CInt(address.protocol.rawValue), CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }  // no socket to try with: the server's bind says what is wrong
        defer { close(fd) }
        var on: CInt = 1
        // As NIO's server socket does, so that connections in TIME_WAIT do not count as the port in use.
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<CInt>.size))
        let result = address.withSockAddr { pointer, size in bind(fd, pointer, socklen_t(size)) }
        if result != 0 {
            throw ListenError(host: host, port: port, error: IOError(errnoCode: errno, reason: "bind"))
        }
    }
}
