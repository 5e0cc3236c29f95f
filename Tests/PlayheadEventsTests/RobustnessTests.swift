import PlayheadEvents
import Testing

@Suite struct RobustnessTests {
    /// Random damage to valid bodies never crashes the decoder; every accepted record is well-formed
    /// and every event is accounted for exactly once.
    @Test func mutatedBodies() throws {
        var sessions = SyntheticSessions(seed: 5, concurrentSessions: 4, startTime: 1_714_564_800_000_000)
        var rng: UInt64 = 99
        func next() -> Int {
            rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: rng >> 33)
        }
        let alphabet = Array(#"{}[]",:0123456789.-eE"\ atnu"#.utf8) + [0x0A, 0xC3, 0xFF, 0x80]
        for round in 0..<400 {
            var body: [UInt8] = []
            let ndjson = round % 2 == 0
            if !ndjson { body.append(UInt8(ascii: "[")) }
            for k in 0..<4 {
                if k > 0 { body.append(ndjson ? 0x0A : UInt8(ascii: ",")) }
                sessions.appendNextEvent(to: &body)
            }
            if !ndjson { body.append(UInt8(ascii: "]")) }
            for _ in 0..<(1 + next() % 4) {
                let i = next() % body.count
                switch next() % 4 {
                case 0: body[i] = alphabet[next() % alphabet.count]
                case 1: body.remove(at: i)
                case 2: body.insert(alphabet[next() % alphabet.count], at: i)
                default: body.removeSubrange(i..<body.count)
                }
                if body.isEmpty { body = [UInt8(ascii: "{")] }
            }
            for format in [EventBodyFormat.json, .ndjson, .sniff] {
                let (outcome, sink) = decode(body, format: format)
                #expect(outcome.accepted == sink.accepted.count)
                #expect(outcome.rejected == sink.rejected.count)
                #expect(outcome.errors.count == outcome.rejected)
                for a in sink.accepted {
                    try a.record.withUnsafeBytes { bytes in
                        let view = try EventRecordView(bytes)
                        var json: [UInt8] = []
                        view.appendJSON(to: &json)
                        #expect(decode(json, format: .json).outcome.accepted == 1)
                    }
                }
                for r in sink.rejected {
                    try r.record.withUnsafeBytes { bytes in
                        let view = try RejectedRecordView(bytes)
                        #expect(Int(view.index) == r.error.index)
                        #expect(view.reason == r.error.reason.rawValue)
                    }
                }
                // Indexes are distinct.
                let indexes = sink.accepted.map(\.index) + sink.rejected.map(\.error.index)
                #expect(Set(indexes).count == indexes.count)
            }
        }
    }
}
