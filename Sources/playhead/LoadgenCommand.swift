import ArgumentParser
import CompressNIO
import Foundation
import NIOCore
import PlayheadEvents
import PlayheadLoadgen

/// `playhead loadgen`: realistic synthetic sessions, sent over HTTP or written as NDJSON.
struct LoadgenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Send realistic synthetic playback sessions to a Playhead server and report acknowledged events/s and latency.",
        discussion: """
            Each session plays one title of a fixed catalogue: play, then pauses and resumes, then \
            stop, with positions that advance with time. When sending, each event is of the wall \
            clock's time: at high rates a session's events come closer together, at low rates further \
            apart, and none tells of the future or arrives late (the live metrics leave out events \
            more than 5 minutes from received_at). With --output the sessions' clock starts at the \
            run's start and advances by the sessions' own time, about one event per session every 40 s \
            (the events depend only on --seed). Latency is measured from when each request was due, so a stalled \
            server shows up (no coordinated omission): it is of the answers that decided their events \
            (202, and 400, which lists each event's rejection), not of other answers (401, 413, 429, 503...: \
            their events are counted as not taken); a request never answered (its connection closed, or \
            given up 10 s after the run) counts with its wait until then, a lower bound; and with --rate, \
            each request due before the end and never sent (the server stalled) counts with its wait \
            until the end ("due and not sent"). The events of a request are made before its send time \
            is taken, so the generator's own work is not in the latency. With --output the same events are written as \
            NDJSON instead of sent. SIGINT (Ctrl-C) or SIGTERM ends a run early, with its report and \
            every acknowledged id written; a second one stops at once. The exit status is 1, after the \
            report, when no connection could be made, when no request was sent at all (a --duration \
            too short), when requests were sent and none was acknowledged (a wrong write key, every \
            body over a limit), or when --acknowledged-ids could not be written.
            """
    )

    // The sending settings are optional, with their defaults below, so that one given with
    // --output (which would ignore it) is refused rather than taken silently (an outside review).
    @Option(name: .long, help: "The server's address: a host name or an IP address (an IPv6 address with or without brackets: ::1 or [::1]), not a URL. Default: 127.0.0.1.") var host: String?
    @Option(name: .long, parsing: .unconditional, help: "The server's port. Default: 8080.") var port: Int?
    @Option(name: .long, parsing: .unconditional, help: "Concurrent keep-alive connections. Default: 64.") var connections: Int?
    @Option(name: .long, parsing: .unconditional, help: "Target events per second over all connections. Default: as fast as acknowledgements come.") var rate: Double?
    @Option(name: .long, parsing: .unconditional, help: "Seconds to run. Default: 10; with --events, until they are sent.") var duration: Double?
    @Option(name: .long, parsing: .unconditional, help: "Stop once this many events are sent; requests stay whole, so a last batch may send up to --batch - 1 more. Default: no limit (--duration ends the run); given without --duration, the run lasts until they are sent. With --output: exactly how many to write; default there 1,000,000.") var events: Int?
    @Option(name: .long, parsing: .unconditional, help: "Events per request (1 sends a single JSON object). Default: 1.") var batch: Int?
    @Option(name: .long, help: "Body format of batches: json (an array) or ndjson. Default: json.") var format: BodyFormat?
    @Flag(name: .long, help: "Compress every body with gzip (Content-Encoding: gzip), as mobile SDKs do for batches. Default: off.") var gzip = false
    @Option(name: .long, help: "A write key, sent as Authorization: Bearer <key>. Default: none (no Authorization header).") var writeKey: String?
    @Option(name: .long, parsing: .unconditional, help: "Seed of the session generator: the same seed, with the same --connections and --sessions, gives the same events (event_id included), apart from their timestamps, which start at the current time, and, when sending, the positions, which follow the wall clock: where a title so ends at another time, the sessions part from there on, but the n-th event keeps its event_id. Each connection simulates sessions of its own, so another --connections gives other events; --output writes what one connection (--connections 1) sends. Default: a new random seed each run, printed in the report (and on standard error with --output), so that two runs send different events: the lake drops an event_id it has already written within its --dedup-window, so a second run with the same seed adds no rows for the events it repeats.") var seed: UInt64?
    @Option(name: .long, parsing: .unconditional, help: "Concurrent sessions simulated by the generator. When sending they are shared out over the connections, at least one each: with fewer sessions than connections, each connection simulates one (said on standard error). A session sends an event about every 40 s: with --rate, more than rate × 90 sessions leave gaps over 90 s between a session's events, after which the live metrics end a session (said on standard error). Default: 10,000, or with --rate, rate × 40 (at least --connections, at most 10,000).") var sessions: Int?
    @Option(name: .long, parsing: .unconditional, help: "Event-loop threads of the generator. Default: 1.") var threads: Int?
    @Option(name: .long, help: "Write the generated events to this NDJSON file instead of sending them. Default: none, send them.") var output: String?
    @Option(name: .long, help: "Write the event_id of every acknowledged event to this file, one per line (for exactly-once checks), as they are acknowledged: within about a second, so a run stopped by a signal leaves the ids acknowledged until then. Default: none.") var acknowledgedIds: String?
    @Option(name: .long, parsing: .unconditional, help: "Make this many requests per connection up front and send them in turn, again and again, so that generating events costs no CPU during the run (for benchmarks of the server; events repeat, so not for exactly-once checks). Default: every request is generated as it is sent.") var replay: Int?
    @Flag(name: .long, help: "Print the report as one JSON object.") var json = false

    enum BodyFormat: String, ExpressibleByArgument, CaseIterable { case json, ndjson }

    func validate() throws {
        for (flag, value) in [("--batch", batch), ("--connections", connections), ("--threads", threads), ("--events", events)] {
            if let value, value < 1 { throw ValidationError("\(flag) must be at least 1, not \(value)") }
        }
        if let sessions, sessions < 1 { throw ValidationError("--sessions must be at least 1, not \(sessions)") }
        // Out of range, it ran the whole --duration and then asked whether the server was running (an outside review).
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be between 1 and 65535, not \(port)") }
        if let duration { try checkSeconds(duration, flag: "--duration") }
        if let rate, !(rate > 0 && rate.isFinite) { throw ValidationError("--rate must be a finite number of events per second more than 0, not \(rate)") }
        if let host {
            // One ':' is a port in the host (`127.0.0.1:8080`); an IPv6 address has more.
            // `[::1]:8080` too: a bracketed address followed by anything (it was taken whole as a host).
            let bracketedWithMore = host.hasPrefix("[") && !host.hasSuffix("]")
            guard !host.isEmpty, !host.contains("/"), !host.contains("@"), !bracketedWithMore,
                host.split(separator: ":", omittingEmptySubsequences: false).count != 2
            else {
                throw ValidationError("--host takes a host name or an IP address (127.0.0.1, ::1 or [::1]), not \(host.isEmpty ? "an empty value" : host): give the port with --port")
            }
        }
        if output != nil {
            // Flags about sending would be ignored: say so rather than write something else.
            let sendingOnly = [
                ("--host", host != nil), ("--port", port != nil), ("--connections", connections != nil), ("--duration", duration != nil),
                ("--batch", batch != nil), ("--format", format != nil), ("--gzip", gzip), ("--write-key", writeKey != nil), ("--threads", threads != nil),
                ("--json", json), ("--rate", rate != nil), ("--replay", replay != nil), ("--acknowledged-ids", acknowledgedIds != nil),
            ]
            if let flag = sendingOnly.first(where: { $0.1 })?.0 {
                throw ValidationError("\(flag) applies to sending events; with --output the events are written as plain NDJSON (--events of them, default 1,000,000)")
            }
        }
        if let replay {
            guard replay >= 1 else { throw ValidationError("--replay must be at least 1") }
            guard acknowledgedIds == nil else {
                throw ValidationError("--replay repeats events, so it cannot be combined with --acknowledged-ids")
            }
        }
    }

    func run() async throws {
        // Below 2^53, so that every JSON reader (jq, JavaScript: doubles) gets it exactly.
        let seed = self.seed ?? UInt64.random(in: 1..<(1 << 53))
        if let output {
            let count = events ?? 1_000_000
            try writeNDJSON(to: output, count: count, seed: seed)
            FileHandle.standardError.write(Data("wrote \(count) events to \(output) (seed \(seed))\n".utf8))
            return
        }
        let host = unbracketed(self.host ?? "127.0.0.1"), port = self.port ?? 8080
        // For messages: an IPv6 address in brackets, as in a URL.
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let connections = self.connections ?? 64, batch = self.batch ?? 1, format = self.format ?? .json
        var configuration = LoadgenConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.connections = connections
        configuration.eventsPerSecond = rate
        // --events alone runs until they are sent: the default 10 s cut them short silently (an outside review).
        configuration.duration = duration.map { .milliseconds(Int64($0 * 1000)) } ?? (events == nil ? .seconds(10) : nil)
        configuration.maxEvents = events
        configuration.eventsPerRequest = batch
        configuration.contentType = format == .ndjson && batch > 1 ? "application/x-ndjson" : "application/json"
        configuration.writeKey = writeKey
        configuration.gzip = gzip
        configuration.threads = threads ?? 1
        // Opened before the run, so that a path that cannot be written fails at once.
        let idWriter = try acknowledgedIds.map { AcknowledgedIDWriter(handle: try Self.openForWriting($0)) }
        configuration.acknowledgedIDs = idWriter
        let gzip = self.gzip
        let recordIDs = configuration.recordAcknowledgedIDs
        // Sent events carry the wall clock's time, so a session's events are sessions ÷ rate seconds
        // apart: with 10,000 sessions at 100 events/s, 100 s, past the live metrics' 90 s session
        // timeout, so every session ended between its events (a code review). By default with
        // --rate, as many sessions as send an event about every 40 s.
        // Clamped before the conversion, which trapped (SIGILL) past Int.max (--rate 1e18; an outside review).
        let sessions = self.sessions ?? rate.map { min(10_000, max(connections, Int(min($0 * 40, 10_000).rounded(.up)))) } ?? 10_000
        if sessions < connections {
            FileHandle.standardError.write(Data("note: --sessions \(sessions) is fewer than --connections \(connections): each connection simulates one session, so \(connections) sessions run at once; give --connections \(sessions) for \(sessions)\n".utf8))
        }
        // Every connection simulates one at least.
        let simulated = max(sessions, connections)
        if let rate, Double(simulated) / rate > 90 {
            // Every connection simulates a session at least: with more connections than sessions, the
            // connections are the limit (it said "give --sessions 20 or fewer" to a run given 20; an outside review).
            let fewer = simulated > sessions ? "--connections" : "--sessions"
            FileHandle.standardError.write(Data("note: \(simulated) sessions at --rate \(rate) send a session's events \(Int(Double(simulated) / rate)) s apart: the live metrics end a session after 90 s without an event, so they count each event as a new session; give \(fewer) \(max(1, Int(rate * 40))) or fewer for sessions that last\n".utf8))
        }
        // Shared out so that they add up to --sessions (the remainder one each to the first connections).
        let sessionsPerConnection = { @Sendable (index: Int) in max(1, sessions / connections + (index < sessions % connections ? 1 : 0)) }
        let startMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let replay = self.replay
        let generator = LoadGenerator(configuration: configuration) { index -> any LoadRequestSource in
            var sessions = SyntheticSessions(
                seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15,
                concurrentSessions: sessionsPerConnection(index),
                startTime: startMicros
            )
            // Events sent now tell of now: never ahead of the wall clock.
            sessions.wallClock = { Int64(Date().timeIntervalSince1970 * 1_000_000) }
            let source = SyntheticRequestSource(
                sessions: sessions,
                batch: batch, ndjson: format == .ndjson, gzip: gzip, recordIDs: recordIDs
            )
            guard let replay else { return source }
            return ReplayRequestSource(source, count: replay)
        }
        // Ctrl-C or SIGTERM (`timeout`, a CI job's end) ends the run early with its report and every
        // acknowledged id written (killed by the signal, the ids of up to its last second were
        // lost); a second one stops at once.
        let interrupts = await Signals.onInterrupt { _ in generator.stop() }
        let report = try await generator.run()
        for source in interrupts { source.cancel() }
        // The report first: a failed write of the ids came before it and lost the run's report (an outside review).
        print(json ? report.json(seed: seed) : report.text(seed: seed))
        if let idWriter, let acknowledgedIds {
            do {
                try await idWriter.finish()
            } catch {
                FileHandle.standardError.write(Data("Error: cannot write \(acknowledgedIds): \(Self.describe(error))\n".utf8))
                throw ExitCode.failure
            }
        }
        guard report.acknowledgedRequests == 0 else { return }
        if report.statusCounts.isEmpty {
            // A report of zeros with exit status 0 would let a script take a run that never reached
            // the server for a result.
            // Requests sent that no answer came to (a server that took them and hung, given up
            // after the run) are not "connection attempts failed".
            let said: String
            if report.requests > 0 {
                said = "no answer came from \(address): \(report.requests) request(s) sent, none answered before its connection closed or the run gave it up (a server that takes connections and does not answer: paused, or not HTTP?)"
            } else if report.connectionErrors > 0 {
                // The last attempt's error: an unresolvable host got the same words as a server not running (an outside review).
                let last = report.lastConnectionError.map { "; the last: \($0)" } ?? ""
                said = "no request reached \(address): \(report.connectionErrors) connection attempts failed (is the server running?)\(last)"
            } else {
                // A run too short to send anything exited 0 with a report of zeros (an outside review).
                said = "no request was sent to \(address): the run ended before one was (--duration too short?)"
            }
            FileHandle.standardError.write(Data("Error: \(said)\n".utf8))
            throw ExitCode.failure
        }
        if report.requests > 0 {
            // Every request answered with an error (a wrong write key, a body over the limits):
            // not a result either (it exited 0, an outside review).
            let statuses = report.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let broken = report.connectionErrors > 0 ? "; connection errors: \(report.connectionErrors)" : ""
            FileHandle.standardError.write(Data(
                "Error: none of the \(report.requests) requests to \(address) was acknowledged (status codes: \(statuses)\(broken))\n".utf8
            ))
            throw ExitCode.failure
        }
    }

    /// Opens `path` for writing as `>` in a shell does: created or truncated in place, so that a
    /// symbolic link, a FIFO or `/dev/stdout` is written through, not replaced by a new file.
    static func openForWriting(_ path: String) throws -> FileHandle {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            // Not a usage mistake: an error, exit status 1, without the usage text.
            FileHandle.standardError.write(Data("Error: cannot open \(path) for writing: \(String(cString: strerror(errno)))\n".utf8))
            throw ExitCode.failure
        }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    private func writeNDJSON(to path: String, count: Int, seed: UInt64) throws {
        let handle = try Self.openForWriting(path)
        defer { try? handle.close() }
        var sessions = SyntheticSessions(
            seed: seed, concurrentSessions: self.sessions ?? 10_000, startTime: Int64(Date().timeIntervalSince1970 * 1_000_000)
        )
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        // A failed write names the file and the system's error (it printed a bare NSCocoaErrorDomain
        // error; an outside review).
        func flush() throws {
            do {
                try handle.write(contentsOf: buffer)
            } catch {
                FileHandle.standardError.write(Data("Error: cannot write \(path): \(Self.describe(error))\n".utf8))
                throw ExitCode.failure
            }
            buffer.removeAll(keepingCapacity: true)
        }
        for _ in 0..<count {
            sessions.appendNextEvent(to: &buffer)
            buffer.append(UInt8(ascii: "\n"))
            if buffer.count >= 1 << 20 { try flush() }
        }
        try flush()
    }

    /// A file error as the system says it (`No space left on device`), from the POSIX error
    /// Foundation wraps, or the error's own description.
    static func describe(_ error: any Error) -> String {
        let error = error as NSError
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if error.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(error.code))) }
        return error.localizedDescription
    }
}

/// Sends requests made up front, in turn (`--replay`).
final class ReplayRequestSource: LoadRequestSource {
    private var requests: [LoadRequest] = []
    private var next = 0

    init(_ source: SyntheticRequestSource, count: Int) {
        let allocator = ByteBufferAllocator()
        for _ in 0..<count {
            guard let request = source.next(allocator: allocator) else { break }
            requests.append(request)
        }
    }

    func next(allocator: ByteBufferAllocator) -> LoadRequest? {
        guard !requests.isEmpty else { return nil }
        defer { next = (next + 1) % requests.count }
        return requests[next]
    }
}

/// Makes the requests of one load-generator connection from the synthetic sessions.
final class SyntheticRequestSource: LoadRequestSource {
    private var sessions: SyntheticSessions
    private let batch: Int
    private let ndjson: Bool
    private let gzip: Bool
    private let recordIDs: Bool
    private var scratch: [UInt8] = []

    init(sessions: SyntheticSessions, batch: Int, ndjson: Bool, gzip: Bool = false, recordIDs: Bool) {
        self.sessions = sessions
        self.batch = batch
        self.ndjson = ndjson
        self.gzip = gzip
        self.recordIDs = recordIDs
        scratch.reserveCapacity(batch * 512 + 16)
    }

    func next(allocator: ByteBufferAllocator) -> LoadRequest? {
        scratch.removeAll(keepingCapacity: true)
        var ids: [String] = []
        if batch > 1 && !ndjson { scratch.append(UInt8(ascii: "[")) }
        for index in 0..<batch {
            if index > 0 { scratch.append(ndjson ? UInt8(ascii: "\n") : UInt8(ascii: ",")) }
            let start = scratch.count
            sessions.appendNextEvent(to: &scratch)
            if recordIDs, let id = Self.eventID(in: scratch[start...]) { ids.append(id) }
        }
        if batch > 1 && !ndjson { scratch.append(UInt8(ascii: "]")) }
        if ndjson { scratch.append(UInt8(ascii: "\n")) }
        var body = allocator.buffer(bytes: scratch)
        if gzip {
            // zlib cannot fail on a complete buffer in memory; a failure would be a bug here.
            do { body = try body.compress(with: .gzip(), allocator: allocator) } catch { fatalError("gzip compression failed: \(error)") }
        }
        return LoadRequest(body: body, events: batch, eventIDs: ids)
    }

    /// The `event_id` of a generated event (the generator writes it as a plain string).
    static func eventID(in event: ArraySlice<UInt8>) -> String? {
        let key = Array(#""event_id":""#.utf8)
        guard let start = event.firstRange(of: key)?.upperBound,
            let end = event[start...].firstIndex(of: UInt8(ascii: "\""))
        else { return nil }
        return String(decoding: event[start..<end], as: UTF8.self)
    }
}

extension LoadgenReport {
    func text(seed: UInt64) -> String {
        let latency = ["p50", "p90", "p99", "p99.9", "max"].map { "\($0)=\(formatMicros(latencyMicros[$0] ?? 0))" }
        let unsent = unsentRequests > 0 ? ", due and not sent \(unsentRequests)" : ""
        return """
            requests: \(requests) (acknowledged \(acknowledgedRequests), failed \(failedRequests), connection errors \(connectionErrors)\(unsent))
            events acknowledged: \(acknowledgedEvents) (rejected \(rejectedEvents), not taken \(refusedEvents)) in \(String(format: "%.2f", elapsedSeconds)) s
            throughput: \(Self.rate(eventsPerSecond)) events/s, \(Self.rate(requestsPerSecond)) requests/s
            latency: \(latency.joined(separator: " "))
            status codes: \(statusCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            seed: \(seed)
            """
    }

    func json(seed: UInt64) -> String {
        let statuses = statusCounts.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
        let latency = latencyMicros.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
        return """
            {"elapsed_seconds":\(elapsedSeconds),"requests":\(requests),"acknowledged_requests":\(acknowledgedRequests),\
            "acknowledged_events":\(acknowledgedEvents),"rejected_events":\(rejectedEvents),"refused_events":\(refusedEvents),\
            "failed_requests":\(failedRequests),"connection_errors":\(connectionErrors),"unsent_requests":\(unsentRequests),"events_per_second":\(eventsPerSecond),"requests_per_second":\(requestsPerSecond),\
            "latency_micros":{\(latency)},"status_counts":{\(statuses)},"seed":\(seed)}
            """
    }

    /// Whole numbers, with decimals below 10 (`--rate 0.5` printed 0 events/s; an outside review).
    static func rate(_ value: Double) -> String {
        String(format: value < 10 ? "%.2f" : "%.0f", value)
    }

    private func formatMicros(_ micros: UInt64) -> String {
        micros >= 1000 ? String(format: "%.2fms", Double(micros) / 1000) : "\(micros)µs"
    }
}
