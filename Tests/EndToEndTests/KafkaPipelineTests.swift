import Foundation
import PlayheadTestSupport
import Testing

/// The scaled-out deployment on a real Kafka-protocol broker (Tansu): one `ingest`, two `store`
/// processes sharing the partitions as consumer group `lake`, and one `observe`.
@Suite("Kafka: ingest, store and observe as separate processes", .serialized)
struct KafkaPipelineTests {
    @Test("every acknowledged event reaches the lake exactly once, even when a store process is killed")
    func multiProcessPipeline() async throws {
        let tansu = try await Tansu.start()
        let directory = try TemporaryDirectory(prefix: "kafka-e2e")
        var processes: [PlayheadServer] = []
        do {
            try await run(tansu: tansu, directory: directory, processes: &processes)
        } catch {
            for process in processes { await process.stop(timeout: .seconds(20)) }
            await tansu.stop()
            throw error
        }
        for process in processes where process.process.isRunning { await process.stop(timeout: .seconds(60)) }
        await tansu.stop()
    }

    private func run(tansu: Tansu, directory: TemporaryDirectory, processes: inout [PlayheadServer]) async throws {
        let log = "kafka://\(tansu.bootstrap)/?partitions=4&session_timeout_ms=3000"
        let lake = directory.appending("lake").path
        let common = ["--log", log, "--lake", "file:\(lake)"]
        let ingest = try await PlayheadServer(command: "ingest", dataDirectory: directory.appending("ingest").path, arguments: common, name: "kafka-ingest")
        processes.append(ingest)
        try await eventually(timeout: .seconds(60), "ingest ready (topics created)") {
            (try? await TestHTTP.request("\(ingest.baseURL)/readyz").status) == 200
        }
        let storeArguments = common + ["--flush-interval", "1"]
        let storeA = try await PlayheadServer(command: "store", dataDirectory: directory.appending("a").path, arguments: storeArguments, name: "kafka-store-a")
        processes.append(storeA)
        let storeB = try await PlayheadServer(command: "store", dataDirectory: directory.appending("b").path, arguments: storeArguments, name: "kafka-store-b")
        processes.append(storeB)
        let observe = try await PlayheadServer(command: "observe", dataDirectory: directory.appending("o").path, arguments: ["--log", log], name: "kafka-observe")
        processes.append(observe)

        let acks = directory.appending("acks.txt").path
        let loadgen = try ChildProcess(
            TestEnvironment.playheadExecutable,
            ["loadgen", "--port", "\(ingest.port)", "--connections", "8", "--batch", "50", "--duration", "8",
             "--acknowledged-ids", acks, "--json"],
            name: "loadgen-kafka", logDirectory: TestEnvironment.artifactsDirectory
        )
        // Halfway through, one store process dies; the other takes over its partitions.
        try await Task.sleep(for: .seconds(4))
        storeA.process.kill9()
        _ = await storeA.process.waitForExit(timeout: .seconds(10))
        #expect(await loadgen.waitForExit(timeout: .seconds(60)) == 0, "loadgen: \(loadgen.stderr)")
        let acknowledged = Set(try String(contentsOfFile: acks, encoding: .utf8).split(separator: "\n").map(String.init))
        #expect(acknowledged.count > 200, "too little load to prove anything: \(loadgen.stdout)")

        let idsFile = directory.appending("ids.txt").path
        var inLake = Set<String>()
        try await eventually(timeout: .seconds(90), "every acknowledged event in the lake") {
            guard (try? await duck(
                "COPY (SELECT event_id FROM read_parquet('{lake}/events/**/*.parquet')) TO '\(idsFile)' (HEADER false)", lake: lake
            )) != nil else { return false }
            inLake = Set((try? String(contentsOfFile: idsFile, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? [])
            return acknowledged.isSubset(of: inLake)
        }
        let missing = acknowledged.subtracting(inLake)
        let missingCount = missing.count
        #expect(missingCount == 0, "acknowledged events missing from the lake, e.g. \(Array(missing.prefix(3)))")
        let counts = try await duck("SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{lake}/events/**/*.parquet')", lake: lake)
        #expect(counts.first?[0] as? Int == counts.first?[1] as? Int, "duplicates in the lake: \(counts)")
        let partitions = try await duck(
            "SELECT count(DISTINCT regexp_extract(filename, '/p([0-9]+)-', 1)) FROM read_parquet('{lake}/events/**/*.parquet', filename=true)", lake: lake
        )
        #expect(partitions.first?[0] as? Int == 4, "files from every Kafka partition: \(partitions)")

        // observe counts the same stream.
        try await eventually(timeout: .seconds(30), "observe has counted the events") {
            let text = (try? await TestHTTP.request("\(observe.baseURL)/metrics").text) ?? ""
            let total = text.split(separator: "\n").filter { $0.hasPrefix("playhead_content_events_total{") }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
            return total >= Double(acknowledged.count)
        }
        #expect(await storeB.stop() == 0)
        #expect(await ingest.stop() == 0)
        #expect(await observe.stop() == 0)
    }
}
