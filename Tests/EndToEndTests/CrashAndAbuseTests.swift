import Foundation
import PlayheadTestSupport
import Testing

/// The server under abuse: `kill -9` under load, and inputs meant to break it.
@Suite("Crash and bad input", .serialized)
struct CrashAndAbuseTests {
    @Test("kill -9 under concurrent load: every acknowledged event is in the log exactly once")
    func killNineUnderLoad() async throws {
        let directory = try TemporaryDirectory(prefix: "crash")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let data = directory.appending("data").path
        let port = try TestNetwork.freePort()
        var server: PlayheadServer? = try await PlayheadServer(dataDirectory: data, arguments: ["--port", "\(port)"])
        let acks = directory.appending("acks.txt").path
        let loadgen = try ChildProcess(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(port)", "--connections", "16", "--batch", "20", "--duration", "9",
             "--acknowledged-ids", acks, "--json"],
            name: "loadgen-crash", logDirectory: TestEnvironment.artifactsDirectory
        )
        for round in 0..<3 {
            try await Task.sleep(for: .milliseconds(1200 + round * 300))
            server?.process.kill9()
            _ = await server?.process.waitForExit(timeout: .seconds(10))
            server = nil
            try await Task.sleep(for: .milliseconds(200))
            // The port can be taken for a moment: the load generator, reconnecting in a loop to the
            // dead server's port, can draw that same port as its own and connect to itself (TCP's
            // simultaneous open), until it finds the answer is its own request (a CI run).
            for attempt in 1... {
                do {
                    server = try await PlayheadServer(dataDirectory: data, arguments: ["--port", "\(port)"], name: "playhead-restart-\(round)")
                    break
                } catch where attempt < 20 && "\(error)".contains("Address already in use") {
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
        }
        let status = await loadgen.waitForExit(timeout: .seconds(60))
        #expect(status == 0, "loadgen: \(loadgen.stderr)")
        #expect(await server?.stop() == 0)
        let acknowledged = try String(contentsOfFile: acks, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(acknowledged.count > 200, "too little load to prove anything: \(loadgen.stdout)")
        var counts: [String: Int] = [:]
        for record in try await Fixtures.dump(data) {
            if let id = record["event_id"] as? String { counts[id, default: 0] += 1 }
        }
        let missing = acknowledged.filter { counts[$0] == nil }
        let duplicated = acknowledged.filter { (counts[$0] ?? 0) > 1 }
        let missingCount = missing.count
        #expect(missingCount == 0, "acknowledged events are missing, e.g. \(Array(missing.prefix(5)))")
        let duplicatedCount = duplicated.count
        #expect(duplicatedCount == 0, "acknowledged events are stored twice, e.g. \(Array(duplicated.prefix(5)))")
    }

    @Test("a torn tail is cut on restart and everything acknowledged stays")
    func tornTail() async throws {
        let (server, _) = try await Fixtures.server()
        let response = try await TestHTTP.postEvents(server, Fixtures.json((0..<50).map { Fixtures.event("t-\($0)") }))
        #expect(response.status == 202)
        server.process.kill9()
        _ = await server.process.waitForExit()
        // Append half a frame of garbage to the newest segment of the events topic.
        let topic = URL(fileURLWithPath: server.dataDirectory).appendingPathComponent("log/events")
        let segments = try FileManager.default.contentsOfDirectory(atPath: topic.path).filter { !$0.hasPrefix(".") }.sorted()
        let newest = try #require(segments.last { $0.hasSuffix(".log") || $0.hasSuffix(".segment") } ?? segments.last)
        let handle = try FileHandle(forWritingTo: topic.appendingPathComponent(newest))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]))
        try handle.close()
        let restarted = try await PlayheadServer(dataDirectory: server.dataDirectory)
        let more = try await TestHTTP.postEvents(restarted, Fixtures.json(Fixtures.event("after")))
        #expect(more.status == 202)
        await restarted.stop()
        let ids = try await Fixtures.storedIDs(server.dataDirectory)
        #expect(ids == (0..<50).map { "t-\($0)" } + ["after"])
    }

    @Test("started on a full disk, serve stays up and answers 503 log_full (it stopped: the lake writer's note of its run failed), and takes events once space is freed")
    func startOnAFullDisk() async throws {
        let directory = try TemporaryDirectory(prefix: "full-start")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        guard let mountPoint = try await mountTmpfs(in: directory, options: "size=16m", for: "startOnAFullDisk") else { return }
        defer { try? runUnmount(mountPoint) }
        let data = mountPoint + "/data"
        let arguments = ["--log-min-free-bytes", "0"]
        let first = try await PlayheadServer(dataDirectory: data, arguments: arguments)
        #expect(try await TestHTTP.postEvents(first, Fixtures.json(Fixtures.event("before-full"))).status == 202)
        #expect(await first.stop() == 0)

        // Fill the file system to the last byte, then start again on it.
        let filler = mountPoint + "/filler"
        _ = try await runCommand("/bin/sh", ["-c", "dd if=/dev/zero of='\(filler)' bs=64k 2>/dev/null; true"])
        let server = try await PlayheadServer(dataDirectory: data, arguments: arguments, name: "playhead-full-start")
        try await Task.sleep(for: .seconds(2))
        #expect(server.process.isRunning, "serve stopped on a full disk: \(server.process.stderr.suffix(2000))")
        // The log's segment has zero-filled space ahead of its end (docs/log-format.md), which takes
        // some events still; past it, 503.
        var acknowledged: [String] = []
        var refused: TestHTTPResponse?
        for batch in 0..<200 {
            let ids = (0..<200).map { "full-\(batch)-\($0)" }
            let answer = try await TestHTTP.postEvents(server, Fixtures.json(ids.map { Fixtures.event($0) }))
            if answer.status == 202 { acknowledged += ids } else { refused = answer; break }
        }
        let refusal = try #require(refused, "no 503 on a full disk")
        #expect(refusal.status == 503 && refusal.text.contains("log_full") && refusal.headers.first(name: "retry-after") != nil, "\(refusal.status) \(refusal.text)")
        #expect(try await TestHTTP.request("\(server.baseURL)/readyz").status == 503)

        try FileManager.default.removeItem(atPath: filler)
        var accepted = 0
        for _ in 0..<60 where accepted != 202 {
            accepted = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("after-full"))).status
            if accepted != 202 { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(accepted == 202, "\(server.process.stderr.suffix(2000))")
        #expect(await server.stop() == 0)
        #expect(try await Fixtures.storedIDs(data) == ["before-full"] + acknowledged + ["after-full"])
    }

    @Test("a request whose accepted events are stored as the disk crosses --log-min-free-bytes gets 202 with its rejections, though they could not be kept (it got 503 log_full, and its retry stored the events again); the next request gets 503 and stores nothing")
    func acceptedStoredAsTheDiskFills() async throws {
        let directory = try TemporaryDirectory(prefix: "full-between")
        defer { withExtendedLifetime(directory) {} }
        guard let mountPoint = try await mountTmpfs(in: directory, options: "size=12m", for: "acceptedStoredAsTheDiskFills") else { return }
        defer { try? runUnmount(mountPoint) }
        let data = mountPoint + "/data"
        let floor = 2 * 1024 * 1024
        let server = try await PlayheadServer(command: "ingest", dataDirectory: data, arguments: ["--log-min-free-bytes", "\(floor)"], name: "full-between")
        var status = statvfs()
        #expect(statvfs(mountPoint, &status) == 0)
        let free = Int(status.f_bavail) * Int(status.f_frsize)
        // 100 KB above the floor: less than the 999 events below take.
        let filler = mountPoint + "/filler"
        #expect(FileManager.default.createFile(atPath: filler, contents: Data(count: free - floor - 100_000)))
        let events = (0..<999).map { Fixtures.event("fb-\($0)", ["title": String(repeating: "t", count: 300)]) } + [Fixtures.event("fb-bad", ["content_type": "bad"])]
        let answer = try await TestHTTP.postEvents(server, Fixtures.json(events))
        #expect(answer.status == 202 && answer.json["accepted"] as? Int == 999 && answer.json["rejected"] as? Int == 1, "\(answer.status) \(answer.text)")
        let next = try await TestHTTP.postEvents(server, Fixtures.json([Fixtures.event("fb-next"), Fixtures.event("fb-next-bad", ["content_type": "bad"])]))
        #expect(next.status == 503 && next.text.contains("log_full"), "\(next.status) \(next.text)")
        try await eventually(timeout: .seconds(10), "the warning") {
            server.process.stderr.contains("a request's rejected events could not be kept in the log after its accepted events were stored")
        }
        // Counted: the first request's one rejection; the second request's accepted event failed
        // (503), so its rejection was never appended and is not counted.
        let metrics = try await TestHTTP.request("\(server.baseURL)/metrics").text
        #expect(TestHTTP.metricTotal(metrics, "playhead_events_rejected_unkept_total") == 1, "\(metrics)")
        #expect(await server.stop() == 0)
        let stored = try await Fixtures.storedIDs(data)
        #expect(stored == (0..<999).map { "fb-\($0)" }, "\(stored.count) stored")
    }

    @Test("a group commit that fails on a full log disk, with the lake elsewhere, is retried while no event comes: the lake's lag goes back to 0 once there is room (it waited for the next batch, so an idle pipeline kept its lag and LakeFlushFailing paged)")
    func failedGroupCommitRetriedWhileIdle() async throws {
        let directory = try TemporaryDirectory(prefix: "commit-retry")
        defer { withExtendedLifetime(directory) {} }
        guard let mountPoint = try await mountTmpfs(in: directory, options: "size=16m", for: "failedGroupCommitRetriedWhileIdle") else { return }
        defer { try? runUnmount(mountPoint) }
        let server = try await PlayheadServer(
            dataDirectory: mountPoint + "/data",
            arguments: ["--lake", directory.appending("lake").path, "--log-min-free-bytes", "0", "--flush-interval", "10"], name: "commit-retry")
        func lakeLag() async -> Double? {
            let text = (try? await TestHTTP.request("\(server.baseURL)/metrics").text) ?? ""
            return text.split(separator: "\n").first { $0.hasPrefix(#"playhead_consumer_lag_events{consumer="lake"} "#) }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        #expect(try await TestHTTP.postEvents(server, Fixtures.json((0..<10).map { Fixtures.event("cr-\($0)") })).status == 202)
        // The disk filled before the batch's flush: the lake's files are written (another file
        // system), its group commit is not.
        let filler = mountPoint + "/filler"
        _ = try await runCommand("/bin/sh", ["-c", "dd if=/dev/zero of='\(filler)' bs=1M 2>/dev/null; true"])
        try await eventually(timeout: .seconds(30), "the commit fails") { server.process.stderr.contains("lake writer: log commit failed") }
        #expect(await lakeLag() == 10)
        try FileManager.default.removeItem(atPath: filler)
        // No event comes; the commit is retried, and the lag goes to 0.
        try await eventually(timeout: .seconds(45), "the lake's lag back to 0 with no new event") { await lakeLag() == 0 }
        #expect(server.process.stderr.contains("lake writer: log commit succeeded again"), "\(server.process.stderr.suffix(2000))")
        #expect(await server.stop() == 0)
    }

    @Test("out of file descriptors (a connection limit set above them), the server pauses accepting instead of spinning a core, says why, and recovers")
    func outOfFileDescriptors() async throws {
        let directory = try TemporaryDirectory(prefix: "e2e-fd")
        let server = try await PlayheadServer(
            command: "ingest", dataDirectory: directory.appending("data").path, arguments: ["--max-connections", "1000"], openFilesLimit: 80
        )
        func cpuTicks() throws -> Int {
            let stat = try String(contentsOfFile: "/proc/\(server.process.pid)/stat", encoding: .utf8)
            let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
            return Int(fields[11])! + Int(fields[12])!  // utime + stime, in 1/100 s
        }
        // More connections than descriptors: the ones past the limit wait in the listen queue.
        var connections = try (0..<120).map { _ in try RawConnection(port: server.port) }
        try await Task.sleep(for: .seconds(1))
        let before = try cpuTicks()
        try await Task.sleep(for: .seconds(2))
        let used = try cpuTicks() - before
        #expect(used < 50, "\(used) ticks of CPU in 2 s while out of descriptors (a spinning event loop uses 200)")
        connections.removeAll()
        var answered = false
        for _ in 0..<20 where !answered {
            answered = (try? await TestHTTP.request("\(server.baseURL)/healthz").status) == 200
            if !answered { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(answered, "the server accepts again once descriptors are free")
        let metrics = try await TestHTTP.request("\(server.baseURL)/metrics").text
        #expect(TestHTTP.metricTotal(metrics, #"playhead_http_accept_waits_total{reason="out_of_descriptors"}"#) >= 2, "\(metrics)")
        // Said once for the pauses of these seconds (it was once a pause, every second).
        let said = server.process.stderr.components(separatedBy: "cannot accept connections: pausing for 1 s").count - 1
        #expect(said == 1, "\(said) times: \(server.process.stderr.suffix(1500))")
        #expect(await server.stop() == 0)
    }

    @Test("the default connection limit keeps file descriptors for the log: with 80 of them and 120 clients, the server accepts half of those it has left, the rest wait, and all are served as others close")
    func connectionLimitKeepsDescriptors() async throws {
        let directory = try TemporaryDirectory(prefix: "e2e-connlimit")
        let server = try await PlayheadServer(command: "ingest", dataDirectory: directory.appending("data").path, openFilesLimit: 80)
        // The descriptors the process holds at bind are not the connections' (they were counted from
        // the limit alone: 64 event loops under a limit of 256 used up every descriptor, a probe).
        func logged(_ key: String) -> Int? {
            server.process.stderr.firstRange(of: key + "=").flatMap { range in Int(server.process.stderr[range.upperBound...].prefix { $0.isNumber }) }
        }
        let inUse = try #require(logged("open_files.in_use"), "\(server.process.stderr.suffix(500))")
        let limit = try #require(logged("max_connections"), "\(server.process.stderr.suffix(500))")
        #expect(inUse > 10 && limit == 80 - inUse - (80 - inUse) / 2, "in use \(inUse), limit \(limit)")
        let fds = "/proc/\(server.process.pid)/fd"
        func sockets() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: fds)
                .filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\($0)"))?.hasPrefix("socket:") == true }.count
        }
        let socketsBefore = try sockets()
        var connections: [RawConnection] = []
        for _ in 0..<120 { connections.append(try RawConnection(port: server.port)) }
        try await eventually(timeout: .seconds(30), "the limit is logged") {
            server.process.stderr.contains("ingest: at the connection limit: new connections wait until others close")
        }
        try await Task.sleep(for: .seconds(1))
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: fds).count
        #expect(descriptors <= 80 - (80 - inUse) / 4, "\(descriptors) descriptors open: the limit leaves room for the log")
        // At most `limit` connections more than before (one fewer if the test's HTTP client kept one open).
        let added = try sockets() - socketsBefore
        #expect((limit - 1...limit).contains(added), "\(added) connections accepted of \(limit)")
        #expect(!server.process.stderr.contains("cannot accept connections"), "ran out of descriptors: \(server.process.stderr.suffix(500))")
        // A client past the limit waits (its request is not read) and is answered once one closes.
        let waiting = try RawConnection(port: server.port)
        #expect(waiting.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(await waiting.readSome(timeout: .seconds(2)).isEmpty, "answered past the limit")
        connections.removeAll()
        let answer = String(decoding: await waiting.readSome(timeout: .seconds(10)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer)")
        // Events still reach the log.
        #expect(try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("after-limit"))).status == 202)
        // And the metrics say what happened: the limit, the waits, the connections open now.
        let metrics = try await TestHTTP.request("\(server.baseURL)/metrics").text
        #expect(TestHTTP.metricTotal(metrics, "playhead_http_connections_max") == Double(limit), "\(metrics)")
        #expect(TestHTTP.metricTotal(metrics, #"playhead_http_accept_waits_total{reason="connection_limit"}"#) >= 1, "\(metrics)")
        #expect(TestHTTP.metricTotal(metrics, #"playhead_http_accept_waits_total{reason="out_of_descriptors"}"#) == 0, "\(metrics)")
        let open = TestHTTP.metricTotal(metrics, "playhead_http_connections_open")
        #expect((1.0...4.0).contains(open), "\(open) connections open")
        #expect(await server.stop() == 0)
    }

    @Test("an open-files limit too low for the event loops is refused at start with what it needs (SwiftNIO stopped the process with SIGILL), and --threads has a bound")
    func openFilesTooLow() async throws {
        let directory = try TemporaryDirectory(prefix: "e2e-nofile")
        for command in ["serve", "store"] {
            let refused = try await runCommand(
                "/bin/sh", ["-c", "ulimit -n 40 && exec \"$@\"", "sh", TestEnvironment.playheadExecutable, command,
                            "--data-dir", directory.appending("data").path, "--port", "0", "--threads", "4"],
                timeout: .seconds(30))
            #expect(refused.status == 1 && refused.stderr.contains("Error: the open-files limit is 40") && refused.stderr.contains("playhead \(command) needs at least 60 for its 4 event-loop threads"), "\(command): \(refused.status) \(refused.stderr.suffix(600))")
        }
        let many = try await runCommand(TestEnvironment.playheadExecutable, ["serve", "--threads", "100000"], timeout: .seconds(30))
        #expect(many.status == 64 && many.stderr.contains("--threads must be at most 256, not 100000"), "\(many.stderr)")
    }

    @Test("20,000 small requests pipelined behind a POST on one connection are all answered and the server stays up (each answered at once recursed a level deeper: the event loop's stack overflowed, and the server died)")
    func deepPipelineBehindAPost() async throws {
        let (server, _) = try await Fixtures.server([])
        let answers = try await runPython(
            """
            import socket, sys, threading, time
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            got = [0, b""]
            def reader():
                while True:
                    data = s.recv(1 << 20)
                    if not data:
                        break
                    got[1] = (got[1] + data)[-64:]
                    got[0] += data.count(b"HTTP/1.1 ")
            thread = threading.Thread(target=reader, daemon=True)
            thread.start()
            # A large body first grows the server's reads (64 KiB): more requests per read.
            big = b'{"x":"' + b"a" * 400000 + b'"}'
            s.sendall(b"POST /v1/events HTTP/1.1\\r\\nHost: a\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(big) + big)
            time.sleep(1)
            post = b"POST /v1/events HTTP/1.1\\r\\nHost: a\\r\\nContent-Type: application/json\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
            s.sendall(post + b"GET /healthz HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n" * 20000)
            deadline = time.time() + 60
            while got[0] < 20002 and time.time() < deadline:
                time.sleep(0.1)
            print(got[0])
            """, arguments: [String(server.port)], timeout: .seconds(120)
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(answers == "20002", "\(answers)")
        #expect(try await TestHTTP.request("\(server.baseURL)/healthz").status == 200)
        #expect(server.process.isRunning)
        #expect(await server.stop() == 0)
    }

    @Test("bad input never takes the server down")
    func badInputBattery() async throws {
        let (server, _) = try await Fixtures.server(["--request-timeout", "1", "--max-body-bytes", "200000"])
        var deep = String(repeating: "[", count: 100_000)
        deep += String(repeating: "]", count: 100_000)
        let invalidUTF8: [UInt8] = Array(#"{"event_id":"u1","title":""#.utf8) + [0xC3, 0x28, 0xFF] + Array(#""}"#.utf8)
        let bodies: [(String, [UInt8], String)] = [
            ("malformed JSON", Array(#"{"event_id": "m1", "event_type": }"#.utf8), "application/json"),
            ("invalid UTF-8", invalidUTF8, "application/json"),
            ("deep nesting", Array(deep.prefix(150_000).utf8), "application/json"),
            ("deep nesting in an event", Array(Fixtures.json(Fixtures.event("d1", ["x": 1])).replacingOccurrences(of: #""x":1"#, with: #""x":"# + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)).utf8), "application/json"),
            ("huge number", Array(Fixtures.json(Fixtures.event("h1")).replacingOccurrences(of: "8880", with: "1" + String(repeating: "0", count: 400)).utf8), "application/json"),
            ("huge exponent", Array(Fixtures.json(Fixtures.event("h2")).replacingOccurrences(of: "120.5", with: "1e999999999").utf8), "application/json"),
            ("NUL bytes", [UInt8](repeating: 0, count: 5000), "application/json"),
            ("random bytes", (0..<20_000).map { _ in UInt8.random(in: 0...255) }, "application/x-ndjson"),
            ("unknown content type", Array("a,b,c".utf8), "text/csv"),
            ("oversize body", [UInt8](repeating: UInt8(ascii: " "), count: 300_000), "application/json"),
        ]
        for (name, body, contentType) in bodies {
            let response = try await TestHTTP.postEvents(server, body, contentType: contentType)
            #expect([400, 413, 415].contains(response.status), "\(name): \(response.status) \(response.text.prefix(300))")
            #expect(response.status != 500, "\(name)")
        }
        // A garbage request line and a slow client that trickles bytes.
        let garbage = try RawConnection(port: server.port)
        _ = garbage.send("NOT HTTP AT ALL\r\n\r\n")
        let garbageStarted = ContinuousClock.now
        let garbageAnswer = String(decoding: await garbage.readAll(timeout: .seconds(10)), as: UTF8.self)
        #expect(garbageAnswer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(garbageAnswer)")
        #expect(garbageAnswer.contains("Connection: close\r\n") && garbageAnswer.contains(#""error":"malformed_http""#), "\(garbageAnswer)")
        #expect(garbageAnswer.contains("X-Content-Type-Options: nosniff\r\n"), "\(garbageAnswer)")
        #expect(ContinuousClock.now - garbageStarted < .seconds(5), "the connection was closed after the 400, not left to a timeout")
        let slow = try RawConnection(port: server.port)
        let started = ContinuousClock.now
        var stillOpen = true
        for byte in "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".utf8 where stillOpen {
            stillOpen = slow.send([byte])
            try await Task.sleep(for: .milliseconds(100))
            if ContinuousClock.now - started > .seconds(4) { break }
        }
        let slowAnswer = String(decoding: await slow.readAll(timeout: .seconds(5)), as: UTF8.self)
        #expect(ContinuousClock.now - started < .seconds(9), "the slow client was not cut off")
        #expect(slowAnswer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n") && slowAnswer.contains("Connection: close\r\n")
                 && slowAnswer.contains(#""error":"request_timeout""#), "\(slowAnswer)")
        // A whole head, then a body that stops short: the same, counted under its route.
        let stalled = try RawConnection(port: server.port)
        #expect(stalled.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nOrigin: https://player.example\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"event"))
        let stalledAnswer = String(decoding: await stalled.readAll(timeout: .seconds(10)), as: UTF8.self)
        #expect(stalledAnswer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(stalledAnswer)")
        // A page's request sees its 408 (CORS headers, as every answer of /v1/events has them), and
        // the answer says what it is, as every answer does.
        #expect(stalledAnswer.contains("Access-Control-Allow-Origin: https://player.example\r\n")
                 && stalledAnswer.contains("X-Content-Type-Options: nosniff\r\n"), "\(stalledAnswer)")
        let metrics = try await TestHTTP.request("\(server.baseURL)/metrics").text
        #expect(metrics.contains(#"playhead_http_server_request_duration_seconds_count{method="POST",route="/v1/events",status="408"} 1"#)
                || metrics.contains(#"route="/v1/events",method="POST",status="408"} 1"#), "\(metrics.split(separator: "\n").filter { $0.contains("408") })")
        // Both 408s are timed from their request's first byte, also the one whose head never came whole.
        let timedOut = metrics.split(separator: "\n").filter { $0.hasPrefix("playhead_http_server_request_duration_seconds_sum{") && $0.contains(#"status="408""#) }
        #expect(timedOut.count == 2, "\(timedOut)")
        for line in timedOut {
            #expect((line.split(separator: " ").last.flatMap { Double($0) } ?? 0) >= 0.9, "\(line)")
        }
        // A request pipelined in the same write as the one before it, whose body stalls: its 408
        // at --request-timeout too (it had no deadline once the first arrived whole, and was closed
        // at the idle timeout, 75 s, without a 408: a review).
        let pipelined = try RawConnection(port: server.port)
        let pipelinedStarted = ContinuousClock.now
        let first = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        #expect(pipelined.send(first + "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"a\""))
        let pipelinedAnswers = String(decoding: await pipelined.readAll(timeout: .seconds(20)), as: UTF8.self)
        #expect(pipelinedAnswers.contains("HTTP/1.1 408 Request Timeout\r\n") && ContinuousClock.now - pipelinedStarted < .seconds(10), "\(pipelinedAnswers)")
        // Still up and accepting.
        #expect(try await TestHTTP.request("\(server.baseURL)/healthz").status == 200)
        let ok = try await TestHTTP.postEvents(server, Fixtures.json(Fixtures.event("still-ok")))
        #expect(ok.status == 202)
        #expect(server.process.isRunning)
    }

    @Test("random requests over real sockets for 20 s (scripts/fuzz-http, a new seed each run): every answer well-formed HTTP with a status of the contract and the documented body, each answer to a well-formed request one that docs/openapi.yaml describes (by openapi-core), the log holding exactly what the answers accepted and rejected, the lake exactly what the log holds, import deciding as POST does, the server up after clients that vanish mid-request, and a clean stop")
    func httpFuzz() async throws {
        let report = try await Fixtures.fuzzHTTP(["--seconds", "20", "--min-requests", "400"])
        // The run reached the server's main paths, so a pass means something.
        let statuses = report["status"] as? [String: Int] ?? [:]
        let reasons = report["reasons"] as? [String: Int] ?? [:]
        #expect((report["requests"] as? Int ?? 0) >= 400, "\(report)")
        #expect((report["accepted"] as? Int ?? 0) >= 50 && (report["rejected"] as? Int ?? 0) >= 50, "\(report)")
        for status in ["202", "400", "401", "413"] {
            #expect((statuses[status] ?? 0) > 0, "no \(status) answer in \(statuses)")
        }
        #expect(reasons.count >= 5, "\(reasons)")
        // The lake was checked against the log (duckdb and pyarrow are in the test venv), not skipped.
        let lake = report["lake"] as? [String: Any] ?? [:]
        #expect((lake["events"] as? Int ?? 0) >= 50 && (lake["rejected"] as? Int ?? 0) >= 50, "lake check: \(lake)")
        // 200 lines through POST and through `playhead import`, both ways taken.
        let imported = report["import"] as? [String: Any] ?? [:]
        #expect((imported["accepted"] as? Int ?? 0) >= 50 && (imported["rejected"] as? Int ?? 0) >= 10, "import comparison: \(imported)")
        #expect(report["metrics_consumer_seconds"] is NSNumber, "the metrics consumer's count was not checked: \(report)")
        // Answers were checked against docs/openapi.yaml (openapi-core is in the test venv), of each
        // path, and of the errors every operation lists.
        let openapi = report["openapi"] as? [String: Any] ?? [:]
        let operations = openapi["by_operation"] as? [String: Int] ?? [:]
        #expect((openapi["answers"] as? Int ?? 0) >= 150, "OpenAPI check: \(report["openapi"] ?? "none")")
        for answer in ["POST /v1/events 202", "POST /v1/events 401", "OPTIONS /v1/events 204", "GET /healthz 200", "GET /openapi.json 200",
                       "GET /readyz 431", "GET /metrics 505", "GET /healthz 408", "DELETE /healthz 405", "GET (a path not listed) 404", "OPTIONS * 204"] {
            #expect(operations[answer] != nil, "no answer '\(answer)' was checked against docs/openapi.yaml: \(operations)")
        }
    }

    @Test("the same for 10 s against ingest with store and observe beside it, each a process of its own on the same embedded log (scripts/fuzz-http --command split): observe counts every event once, and store's graceful stop, after ingest's, leaves the lake holding exactly what the log holds")
    func httpFuzzSplit() async throws {
        let report = try await Fixtures.fuzzHTTP(["--seconds", "10", "--min-requests", "200", "--command", "split", "--import-lines", "50"])
        #expect((report["accepted"] as? Int ?? 0) >= 50 && (report["rejected"] as? Int ?? 0) >= 50, "\(report)")
        #expect(report["metrics_consumer_seconds"] is NSNumber, "observe's count was not checked: \(report)")
        #expect(((report["openapi"] as? [String: Any])?["answers"] as? Int ?? 0) >= 150, "OpenAPI check: \(report["openapi"] ?? "none")")
        let lake = report["lake"] as? [String: Any] ?? [:]
        #expect((lake["events"] as? Int ?? 0) >= 50 && (lake["rejected"] as? Int ?? 0) >= 50, "lake check: \(lake)")
    }
}
