import Foundation
import NIOCore
import PlayheadLoadgen
import PlayheadTestSupport
import Testing

/// `playhead loadgen`'s report, events and messages, after an outside review of the load generator.
@Suite("loadgen", .serialized)
struct LoadgenTests {
    static func report(_ run: CommandResult) throws -> [String: Any] { try report(run.stdout, run.stderr) }

    static func report(_ stdout: String, _ stderr: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any], "\(stdout) \(stderr)")
    }

    @Test("the same seed gives the same event_ids whether written or sent: they parted once a title ended at another time (its position follows the wall clock when sending)")
    func sameSeedSameEvents() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }
        // One session, so that titles end often: written, its clock advances about 40 s per event;
        // sent, a few milliseconds.
        let file = directory.appending("events.ndjson").path
        let written = try await runCommand(
            TestEnvironment.playheadExecutable, ["loadgen", "--output", file, "--events", "300", "--sessions", "1", "--seed", "7"])
        #expect(written.status == 0, "\(written.stderr)")
        let writtenIDs = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["event_id"] as? String
        }
        let acks = directory.appending("acks.txt").path
        let sent = try await runCommand(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(server.port)", "--connections", "1", "--sessions", "1", "--events", "300", "--rate", "2000",
             "--seed", "7", "--acknowledged-ids", acks])
        #expect(sent.status == 0, "\(sent.stderr)")
        let sentIDs = try String(contentsOfFile: acks, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(writtenIDs.count == 300 && sentIDs == writtenIDs, "first difference at \(Array(zip(writtenIDs, sentIDs)).firstIndex { $0.0 != $0.1 } ?? -1) of \(writtenIDs.count), \(sentIDs.count)")
        #expect(await server.stop() == 0)
    }

    /// A source whose every request takes `makingTime` to make (a big batch, gzip): the load
    /// generator's own work, which is not the server's latency.
    final class SlowSource: LoadRequestSource {
        let makingTime: TimeInterval
        var count = 0
        init(makingTime: TimeInterval) { self.makingTime = makingTime }
        func next(allocator: ByteBufferAllocator) -> LoadRequest? {
            Thread.sleep(forTimeInterval: makingTime)
            count += 1
            return LoadRequest(body: allocator.buffer(string: Fixtures.json(Fixtures.event("slow-\(UUID().uuidString)"))), events: 1)
        }
    }

    @Test("latency leaves out the time the generator takes to make a request, paced or not (it counted it)")
    func latencyLeavesOutMakingTheRequest() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }
        // Paced, at 1 request/s: time enough to make each between the answer and its turn, on a
        // loaded machine too (at 4/s a whole test run made requests late, and late is latency).
        for (rate, events) in [(nil, 6), (1.0, 4)] {
            var configuration = LoadgenConfiguration()
            configuration.port = server.port
            configuration.connections = 1
            configuration.maxEvents = events
            configuration.eventsPerSecond = rate
            configuration.duration = .seconds(30)
            let generator = LoadGenerator(configuration: configuration) { _ in SlowSource(makingTime: 0.4) }
            let report = try await generator.run()
            #expect(report.acknowledgedEvents == events)
            // Each request takes 400 ms to make; a server on this machine answers in a few.
            #expect((report.latencyMicros["p50"] ?? .max) < 250_000, "rate \(String(describing: rate)): \(report.latencyMicros)")
        }
        #expect(await server.stop() == 0)
    }

    @Test("answers that did not decide the events are not latencies, and their events are counted as not taken (they counted nowhere)")
    func refusedAnswers() async throws {
        let (server, directory) = try await Fixtures.server(["--max-events-per-request", "5"])
        defer { withExtendedLifetime(directory) {} }
        let arguments = ["loadgen", "--port", "\(server.port)", "--connections", "1", "--batch", "50", "--events", "100"]
        let run = try await runCommand(TestEnvironment.playheadExecutable, arguments + ["--json"])
        #expect(run.status == 1, "\(run.stderr)")
        let report = try Self.report(run)
        #expect(report["refused_events"] as? Int == 100 && report["acknowledged_events"] as? Int == 0, "\(run.stdout)")
        #expect((report["latency_micros"] as? [String: Any])?.isEmpty == true, "\(run.stdout)")
        let text = try await runCommand(TestEnvironment.playheadExecutable, arguments)
        #expect(text.stdout.contains("events acknowledged: 0 (rejected 0, not taken 100)"), "\(text.stdout)")
        #expect(await server.stop() == 0)
    }

    @Test("a server that stalls until its connections break shows in the latency: the request it never answered, and those due at --rate and never sent (max was a few ms)")
    func stallShowsInLatency() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }
        let loadgen = try ChildProcess(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(server.port)", "--connections", "1", "--rate", "100", "--duration", "3", "--json"],
            name: "loadgen-stall", logDirectory: TestEnvironment.artifactsDirectory)
        try await Task.sleep(for: .seconds(1))
        server.process.signal(SIGSTOP)
        try await Task.sleep(for: .milliseconds(1500))
        server.process.kill9()
        let status = await loadgen.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "\(loadgen.stderr)")
        let report = try Self.report(loadgen.stdout, loadgen.stderr)
        let latency = try #require(report["latency_micros"] as? [String: Int], "\(loadgen.stdout)")
        // The request in flight waited about 1.5 s, the last ones due about 0.5 s before the end.
        #expect((latency["max"] ?? 0) >= 1_000_000, "\(loadgen.stdout)")
        #expect((report["unsent_requests"] as? Int ?? 0) >= 20, "\(loadgen.stdout)")
    }

    @Test("--events without --duration runs until they are sent (the default 10 s cut them short)")
    func eventsWithoutDuration() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }
        let run = try await runCommand(
            TestEnvironment.playheadExecutable, ["loadgen", "--port", "\(server.port)", "--connections", "2", "--rate", "20", "--events", "210", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try Self.report(run)["acknowledged_events"] as? Int == 210, "\(run.stdout)")
        #expect(await server.stop() == 0)
    }

    @Test("a 429 closes its connection, and loadgen opens another without a send on the closed one: a rate-limited run has no connection errors and one failed request per 429 (each 429 showed as a connection error and a second failed request)")
    func rateLimitedRunReconnects() async throws {
        let (server, directory) = try await Fixtures.server(["--rate-limit", "20"])
        defer { withExtendedLifetime(directory) {} }
        let run = try await runCommand(
            TestEnvironment.playheadExecutable, ["loadgen", "--port", "\(server.port)", "--duration", "2", "--connections", "1", "--batch", "5", "--json"])
        let report = try Self.report(run)
        let statuses = report["status_counts"] as? [String: Int] ?? [:]
        let refused = statuses["429"] ?? 0
        #expect(refused > 0 && (statuses["202"] ?? 0) > 0, "\(report)")
        #expect(report["connection_errors"] as? Int == 0 && report["failed_requests"] as? Int == refused, "\(report)")
        #expect(await server.stop() == 0)
    }

    @Test("loadgen's messages and exit status: a huge --rate runs (SIGILL), the sessions note names --connections when they are the limit, a run that sends nothing fails, events/s below 10 have decimals, a failed --acknowledged-ids write comes after the report, --output names the file it cannot write")
    func messagesAndStatus() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }
        let port = "\(server.port)"
        let huge = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--port", port, "--rate", "1e18", "--events", "50", "--connections", "2"])
        #expect(huge.status == 0, "\(huge.status) \(huge.stderr)")

        let note = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--port", port, "--rate", "0.5", "--sessions", "20", "--duration", "0.3"])
        #expect(note.stderr.contains("give --connections 20 or fewer"), "\(note.stderr)")

        let tooShort = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--port", port, "--duration", "0.0004"])
        #expect(tooShort.status == 1 && tooShort.stderr.contains("no request was sent to 127.0.0.1:\(port)"), "\(tooShort.stdout) \(tooShort.stderr)")

        let slow = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--port", port, "--rate", "5", "--events", "3", "--connections", "1"])
        #expect(slow.status == 0 && slow.stdout.contains(/throughput: \d+\.\d\d events\/s/), "\(slow.stdout)")

        let full = try await runCommand(
            TestEnvironment.playheadExecutable, ["loadgen", "--port", port, "--events", "5", "--connections", "1", "--acknowledged-ids", "/dev/full", "--json"])
        #expect(full.status == 1 && full.stderr.contains("cannot write /dev/full: No space left on device"), "\(full.stderr)")
        #expect((try? JSONSerialization.jsonObject(with: Data(full.stdout.utf8)) as? [String: Any])?["acknowledged_events"] as? Int == 5, "\(full.stdout)")

        let output = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--output", "/dev/full", "--events", "10"])
        #expect(output.status == 1 && output.stderr.contains("Error: cannot write /dev/full: No space left on device"), "\(output.stderr)")
        #expect(await server.stop() == 0)

        // A name that cannot resolve (refused without asking a DNS server): the reason is said, not
        // only "is the server running?".
        let unknown = try await runCommand(TestEnvironment.playheadExecutable, ["loadgen", "--host", "no..such.host", "--port", "80", "--duration", "0.5"])
        #expect(unknown.status == 1 && unknown.stderr.contains("; the last: ") && unknown.stderr.contains("no..such.host"), "\(unknown.stderr)")
    }

    @Test("the connections of an event loop share one histogram: 1000 connections take a few MB, not 190 KB each (452 MB at 2000)")
    func memoryPerConnection() async throws {
        let (server, directory) = try await Fixtures.server()
        defer { withExtendedLifetime(directory) {} }
        let script = """
            import resource, subprocess, sys
            run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
            print(run.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, run.stderr.replace("\\n", " "))
            """
        let output = try await runPython(
            script, arguments: [TestEnvironment.playheadExecutable, "loadgen", "--port", "\(server.port)", "--connections", "1000", "--events", "2000"])
        let fields = output.split(separator: " ")
        #expect(fields.first == "0", "\(output)")
        // Peak RSS in KiB: about 30 MB here; one histogram per connection added about 190 MB.
        #expect((fields.count > 1 ? Int(fields[1]) ?? .max : .max) < 120_000, "\(output)")
        #expect(await server.stop() == 0)
    }

    @Test(
        "loadgen to an IPv6 address sends Host: [::1]:port (it sent ::1:port)",
        .enabled(if: (try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8))?.contains(" lo") == true, "needs IPv6 on loopback")
    )
    func ipv6HostHeader() async throws {
        let listener = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_addr = in6addr_loopback
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        try #require(bound == 0 && listen(listener, 8) == 0, "errno \(errno)")
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin6_port))
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        let loadgen = try ChildProcess(
            TestEnvironment.playheadExecutable, ["loadgen", "--host", "::1", "--port", "\(port)", "--events", "1", "--connections", "1"],
            name: "loadgen-ipv6-host", logDirectory: TestEnvironment.artifactsDirectory)
        var head = ""
        let deadline = ContinuousClock.now + .seconds(20)
        var connection: Int32 = -1
        while ContinuousClock.now < deadline && !head.contains("\r\n\r\n") {
            if connection < 0 {
                connection = accept(listener, nil, nil)
                if connection >= 0 { _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK) }
            } else {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = read(connection, &buffer, buffer.count)
                if count > 0 { head += String(decoding: buffer[0..<count], as: UTF8.self) }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        if connection >= 0 { close(connection) }
        #expect(head.contains("\r\nHost: [::1]:\(port)\r\n"), "\(head)")
        if await loadgen.waitForExit(timeout: .seconds(20)) == nil { loadgen.kill9() }
    }
}
