import NIOCore
import NIOHTTP1
import Testing

@testable import PlayheadIngest

@Suite("Client addresses (--fill-ip-address, --trusted-proxy)")
struct ClientAddressTests {
    func network(_ text: String) throws -> IPNetwork { try IPNetwork(parsing: text) }

    func error(_ text: String) -> String? {
        do {
            _ = try IPNetwork(parsing: text)
            return nil
        } catch {
            return error.description
        }
    }

    func address(_ text: String) throws -> IPAddressBytes { try #require(IPAddressBytes(text)) }

    @Test("CIDR ranges and single addresses, IPv4 and IPv6; the error names what is wrong")
    func parsing() throws {
        #expect(try network("10.0.0.0/8").description == "10.0.0.0/8")
        #expect(try network("127.0.0.1").description == "127.0.0.1")
        #expect(try network("2001:DB8::/32").description == "2001:db8::/32")
        #expect(try network("0.0.0.0/0").description == "0.0.0.0/0")
        #expect(try network("::/0").description == "::/0")
        #expect(error("10.0.0.1/8") == "'10.0.0.1/8' has bits set past its /8: did you mean 10.0.0.0/8?")
        #expect(error("2001:db8::1/32") == "'2001:db8::1/32' has bits set past its /32: did you mean 2001:db8::/32?")
        #expect(error("10.0.0.0/33") == "'10.0.0.0/33' has a prefix length that is not 0–32")
        #expect(error("::/129") == "'::/129' has a prefix length that is not 0–128")
        for bad in ["10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/8/8"] {
            #expect(error(bad)?.contains("prefix length") == true, "\(bad)")
        }
        for bad in ["", "banana", "10.0.0", "010.0.0.1", "10.0.0.256/8", "fe80::1%eth0", "[::1]", "10.0.0.1:80"] {
            #expect(error(bad)?.contains("is not an IP address or a CIDR range") == true, "\(bad)")
        }
    }

    @Test("a range holds the addresses of its prefix, IPv4 and IPv4-mapped alike, and no others")
    func containment() throws {
        let tenEight = try network("10.0.0.0/8")
        #expect(tenEight.contains(try address("10.255.1.2")))
        #expect(tenEight.contains(try address("::ffff:10.1.2.3")))
        #expect(!tenEight.contains(try address("11.0.0.0")))
        #expect(!tenEight.contains(try address("::a00:1")))  // IPv4-compatible, not mapped
        let odd = try network("192.168.0.0/23")
        #expect(odd.contains(try address("192.168.1.255")))
        #expect(!odd.contains(try address("192.168.2.0")))
        let host = try network("127.0.0.1")
        #expect(host.contains(try address("127.0.0.1")))
        #expect(!host.contains(try address("127.0.0.2")))
        let v6 = try network("2001:db8::/33")
        #expect(v6.contains(try address("2001:db8:7fff::1")))
        #expect(!v6.contains(try address("2001:db8:8000::1")))
        #expect(!v6.contains(try address("10.0.0.1")))
        #expect(try network("0.0.0.0/0").contains(try address("203.0.113.5")))
        #expect(!(try network("0.0.0.0/0")).contains(try address("2001:db8::1")))
        #expect(try network("::/0").contains(try address("203.0.113.5")))
    }

    func client(_ peer: String, _ forwarded: [String] = [], trusted: [String] = [], header: String = "X-Forwarded-For") throws -> String? {
        let resolver = ClientAddressResolver(trustedProxies: try trusted.map(network), header: try ForwardedHeader(parsing: header))
        var headers = HTTPHeaders()
        for value in forwarded { headers.add(name: header, value: value) }
        return resolver.clientAddress(peer: try SocketAddress(ipAddress: peer, port: 40000), headers: headers)
    }

    @Test("without trusted proxies the client is the peer, and X-Forwarded-For (which any client can write) is ignored")
    func peerOnly() throws {
        #expect(try client("198.51.100.7") == "198.51.100.7")
        #expect(try client("198.51.100.7", ["203.0.113.9"]) == "198.51.100.7")
        #expect(try client("2001:DB8:0:0::1") == "2001:db8::1")
        // A dual-stack socket reports IPv4 peers mapped: stored as plain IPv4.
        #expect(try client("::ffff:192.0.2.33") == "192.0.2.33")
        #expect(try client("198.51.100.7", ["203.0.113.9"], trusted: ["10.0.0.0/8"]) == "198.51.100.7")
        let unix = try SocketAddress(unixDomainSocketPath: "/tmp/playhead-test.sock")
        #expect(ClientAddressResolver().clientAddress(peer: unix, headers: HTTPHeaders()) == nil)
        #expect(ClientAddressResolver().clientAddress(peer: nil, headers: HTTPHeaders()) == nil)
    }

    @Test("behind trusted proxies the client is the nearest untrusted address in X-Forwarded-For, over several headers")
    func behindProxies() throws {
        let trusted = ["127.0.0.1", "10.0.0.0/8"]
        #expect(try client("127.0.0.1", ["203.0.113.9"], trusted: trusted) == "203.0.113.9")
        // A client's own (forged) entries sit left of the one the first proxy added: not reached.
        #expect(try client("127.0.0.1", ["1.1.1.1, 203.0.113.9, 10.1.2.3"], trusted: trusted) == "203.0.113.9")
        #expect(try client("127.0.0.1", ["1.1.1.1", "203.0.113.9", "10.1.2.3"], trusted: trusted) == "203.0.113.9")
        #expect(try client("127.0.0.1", [" 203.0.113.9 ,\t10.1.2.3 "], trusted: trusted) == "203.0.113.9")
        // Every entry trusted: the farthest one.
        #expect(try client("127.0.0.1", ["10.0.0.3, 10.0.0.2"], trusted: trusted) == "10.0.0.3")
        // No header: the trusted peer itself.
        #expect(try client("127.0.0.1", trusted: trusted) == "127.0.0.1")
        // Ports and brackets.
        #expect(try client("127.0.0.1", ["203.0.113.9:5123"], trusted: trusted) == "203.0.113.9")
        #expect(try client("127.0.0.1", ["[2001:db8::1]:443"], trusted: trusted) == "2001:db8::1")
        #expect(try client("127.0.0.1", ["[2001:DB8::2]"], trusted: trusted) == "2001:db8::2")
        #expect(try client("127.0.0.1", ["2001:db8::3"], trusted: trusted) == "2001:db8::3")
        #expect(try client("127.0.0.1", ["::ffff:203.0.113.4"], trusted: trusted) == "203.0.113.4")
        // IPv6 proxies.
        #expect(try client("2001:db8::10", ["203.0.113.9, 2001:db8::11"], trusted: ["2001:db8::/64"]) == "203.0.113.9")
    }

    @Test("an entry that is not an address ends the walk at the last trusted address before it")
    func malformedEntries() throws {
        let trusted = ["127.0.0.1", "10.0.0.0/8"]
        #expect(try client("127.0.0.1", ["unknown"], trusted: trusted) == "127.0.0.1")
        #expect(try client("127.0.0.1", ["203.0.113.9, unknown, 10.0.0.5"], trusted: trusted) == "10.0.0.5")
        // An element of blanks is empty, ignored as RFC 9110 §5.6.1 says (NIO's split, used until
        // 2026-12-07, ignored `,,` but took `, ,` for an entry that is not an address).
        #expect(try client("127.0.0.1", ["198.51.100.1, "], trusted: trusted) == "198.51.100.1")
        #expect(try client("127.0.0.1", ["198.51.100.1, \t, 10.0.0.5"], trusted: trusted) == "198.51.100.1")
        for bad in ["203.0.113.9:", "203.0.113.9:http", "[2001:db8::1", "[203.0.113.9]", "2001:db8::1:443:", "1.2.3.4:5:6", "203.0.113.9:123456"] {
            #expect(try client("127.0.0.1", ["198.51.100.1, \(bad)"], trusted: trusted) == "127.0.0.1", "\(bad)")
        }
    }
}

@Suite("Client addresses from other headers (--forwarded-header)")
struct ForwardedHeaderTests {
    let trusted = ["127.0.0.1", "10.0.0.0/8"]

    func client(_ forwarded: [String], header: String) throws -> String? {
        try ClientAddressTests().client("127.0.0.1", forwarded, trusted: trusted, header: header)
    }

    @Test("trusted ranges that together hold every (IPv4) address are named, however they are split; an IPv4-mapped range is said as written")
    func rangesThatTrustEveryone() throws {
        func coverage(_ ranges: [String]) throws -> String? { IPNetwork.coverage(of: try ranges.map { try IPNetwork(parsing: $0) }) }
        #expect(try coverage(["0.0.0.0/0"]) == "every IPv4 client")
        #expect(try coverage(["::ffff:0.0.0.0/96"]) == "every IPv4 client")
        #expect(try coverage(["0.0.0.0/1", "128.0.0.0/1"]) == "every IPv4 client")  // no warning before (a review)
        #expect(try coverage(["10.0.0.0/8", "0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/2"]) == "every IPv4 client")
        #expect(try coverage(["::/0"]) == "every client")
        #expect(try coverage(["::/1", "8000::/1"]) == "every client")
        #expect(try coverage(["0.0.0.0/1", "128.0.0.0/2"]) == nil)
        #expect(try coverage(["10.0.0.0/8", "2001:db8::/32"]) == nil)
        #expect(try IPNetwork(parsing: "::ffff:0.0.0.0/96").description == "::ffff:0.0.0.0/96")
        #expect(try IPNetwork(parsing: "::ffff:10.0.0.0/104").description == "::ffff:10.0.0.0/104")
        #expect(throws: IPNetworkError.self) { try IPNetwork(parsing: "::ffff:10.0.0.1/104") }
        do {
            _ = try IPNetwork(parsing: "::ffff:10.0.0.1/104")
        } catch {
            // The suggestion is one that is taken (it said 10.0.0.0/104, which is refused: a review).
            #expect(error.description.hasSuffix("did you mean ::ffff:10.0.0.0/104?"), "\(error)")
            #expect((try? IPNetwork(parsing: "::ffff:10.0.0.0/104")) != nil)
        }
        #expect(try IPNetwork(parsing: "10.0.0.0/8").description == "10.0.0.0/8")
        // An IPv4-mapped address with an IPv4 prefix length meant the IPv4 range ("did you mean
        // ::/8?" named another range altogether, a review).
        do {
            _ = try IPNetwork(parsing: "::ffff:10.0.0.0/8")
            Issue.record("::ffff:10.0.0.0/8 was taken")
        } catch {
            #expect(error.description == "'::ffff:10.0.0.0/8' has an IPv4-mapped address with a prefix length over 128 bits, /8: did you mean ::ffff:10.0.0.0/104 (or 10.0.0.0/8)?", "\(error)")
        }
    }

    @Test("a header's name in any case; Forwarded is RFC 7239's; a name that is no token is refused")
    func names() throws {
        #expect(try ForwardedHeader(parsing: "FORWARDED") == .forwarded)
        #expect(try ForwardedHeader(parsing: "X-Forwarded-For") == .xForwardedFor)
        #expect(try ForwardedHeader(parsing: "CF-Connecting-IP") == .addressList(name: "cf-connecting-ip"))
        #expect(try ForwardedHeader(parsing: "x-real-ip").description == "x-real-ip")
        for bad in ["", "X Real IP", "X-Real-IP:", "Forwarded\r\n", "é"] {
            #expect(throws: IPNetworkError.self, "\(bad)") { try ForwardedHeader(parsing: bad) }
        }
    }

    @Test("Forwarded: the for= of each element over several headers, quoted or not, with ports and brackets; the walk as for X-Forwarded-For")
    func rfc7239() throws {
        // RFC 7239's own examples.
        #expect(try client([#"for="_gazonk""#], header: "Forwarded") == "127.0.0.1")
        #expect(try client([#"For="[2001:db8:cafe::17]:4711""#], header: "Forwarded") == "2001:db8:cafe::17")
        #expect(try client(["for=192.0.2.60;proto=http;by=203.0.113.43"], header: "Forwarded") == "192.0.2.60")
        #expect(try client(["for=192.0.2.43, for=198.51.100.17"], header: "Forwarded") == "198.51.100.17")
        // The nearest untrusted element, over several headers; a client's forged elements sit further left.
        #expect(try client(["for=1.1.1.1, for=203.0.113.9", "for=10.1.2.3;by=10.0.0.1"], header: "Forwarded") == "203.0.113.9")
        // Parameters in any order and case, spaces around them, a port on IPv4.
        #expect(try client([" proto=https ; FOR=\"203.0.113.9:5123\" ; by=10.0.0.1 "], header: "Forwarded") == "203.0.113.9")
        // An obfuscated port on a real address (RFC 7239 §6.3, obfport): the address is the client's
        // (it ended the walk and the proxy's address was stored, a review); not in X-Forwarded-For.
        #expect(try client([#"for="192.0.2.43:_hidden""#], header: "Forwarded") == "192.0.2.43")
        #expect(try client([#"for="[2001:db8:cafe::17]:_p1.x-y""#], header: "Forwarded") == "2001:db8:cafe::17")
        for bad in [#"for="192.0.2.43:_""#, #"for="192.0.2.43:_a b""#, #"for="192.0.2.43:_é""#] {
            #expect(try client([bad], header: "Forwarded") == "127.0.0.1", "\(bad)")
        }
        #expect(try client(["192.0.2.43:_hidden"], header: "X-Forwarded-For") == "127.0.0.1")
        // A comma or semicolon inside a quoted value does not split; escapes are undone.
        #expect(try client([#"for=203.0.113.9;host="a,b;c", for=10.0.0.7"#], header: "Forwarded") == "203.0.113.9")
        #expect(try client([#"for="203.0.113.\9""#], header: "Forwarded") == "203.0.113.9")
        // unknown, an obfuscated name, or an element without for= ends the walk at the last trusted address.
        // An element with for= twice is not valid (RFC 7239 §4) and ends it too.
        for end in ["for=unknown", #"for="_hidden""#, "proto=https", "for=", #"for="[2001:db8::1""#, "for=5.5.5.5;for=10.0.0.9"] {
            #expect(try client(["for=198.51.100.1, \(end), for=10.0.0.5"], header: "Forwarded") == "10.0.0.5", "\(end)")
        }
        // Empty elements are ignored (RFC 9110 §5.6.1), as X-Forwarded-For's are: they end no walk.
        #expect(try client(["for=198.51.100.1, , for=10.0.0.5"], header: "Forwarded") == "198.51.100.1")
        #expect(try client(["for=198.51.100.1,,for=10.0.0.5,", ","], header: "Forwarded") == "198.51.100.1")
        #expect(try client(["198.51.100.1,, 10.0.0.5,"], header: "X-Forwarded-For") == "198.51.100.1")
        // A quote a client left open does not swallow the element a proxy appended to its line:
        // the line ends the walk, at the trusted peer; a line after it is read as usual.
        #expect(try client([#"for=6.6.6.6;x=", for=203.0.113.50"#], header: "Forwarded") == "127.0.0.1")
        #expect(try client([#"for=6.6.6.6;x=""#, "for=203.0.113.50"], header: "Forwarded") == "203.0.113.50")
        #expect(try client([#"for=6.6.6.6;x="\"#, "for=10.0.0.8"], header: "Forwarded") == "10.0.0.8")
        // A Unicode prepend mark (U+0600) before a separator does not hide it: split by Characters,
        // it joined the comma a proxy appended after it, and the client's for= was taken (a review).
        #expect(try client(["for=6.6.6.6;x=\u{0600}, for=203.0.113.50"], header: "Forwarded") == "203.0.113.50")
        #expect(try client(["for=6.6.6.6;x=\u{0600};y=1, for=203.0.113.50"], header: "Forwarded") == "203.0.113.50")
        // X-Forwarded-For's entries too: the client's entry and the proxy's read as one, not an
        // address, and the trusted proxy's own address was taken for the client's.
        #expect(try client(["6.6.6.6\u{0600}, 203.0.113.50"], header: "X-Forwarded-For") == "203.0.113.50")
        #expect(try client(["6.6.6.6\u{0600},203.0.113.51, 10.0.0.2"], header: "X-Forwarded-For") == "203.0.113.51")
        // X-Forwarded-For is not read when Forwarded is the header.
        var headers = HTTPHeaders()
        headers.add(name: "X-Forwarded-For", value: "198.51.100.99")
        let resolver = ClientAddressResolver(trustedProxies: try trusted.map(ClientAddressTests().network), header: .forwarded)
        #expect(resolver.clientAddress(peer: try SocketAddress(ipAddress: "127.0.0.1", port: 1), headers: headers) == "127.0.0.1")
    }

    @Test("a header of one address (X-Real-IP, CF-Connecting-IP) is a list of one")
    func singleAddress() throws {
        #expect(try client(["203.0.113.9"], header: "X-Real-IP") == "203.0.113.9")
        #expect(try client(["2001:db8::5"], header: "CF-Connecting-IP") == "2001:db8::5")
        #expect(try client(["10.0.0.9"], header: "True-Client-IP") == "10.0.0.9")
        #expect(try client(["not an address"], header: "X-Real-IP") == "127.0.0.1")
    }
}

extension ClientAddressResolver {
    /// ``clientAddress(peer:headers:)`` for a peer given as a socket address, as one request of a
    /// new connection.
    fileprivate func clientAddress(peer: SocketAddress?, headers: HTTPHeaders) -> String? {
        clientAddress(peer: self.peer(peer), headers: headers)
    }
}
