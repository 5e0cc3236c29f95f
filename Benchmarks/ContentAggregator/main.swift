// Throughput of ContentAggregator.observe (CPU time of the calling thread):
// scripts/bench-content-aggregator.sh builds and runs it (release).
import Glibc
import PlayheadMetrics
func cpu() -> Double { var t = timespec(); clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return Double(t.tv_sec) + Double(t.tv_nsec)/1e9 }
let sessions = 50_000
let perSession = 20
var observations: [ContentObservation] = []
observations.reserveCapacity(sessions * perSession)
let types = ["movie", "episode", "ad"]
for step in 0..<perSession {
    let kind = step == perSession - 1 ? "stop" : (step % 5 == 3 ? "pause" : "play")
    for session in 0..<sessions {
        observations.append(ContentObservation(eventType: kind, contentType: types[session % 3], sessionKey: SessionKey("8f14e45f-ceea-467f-a0e6-\(100000000000 + session)"), contentID: "content-\(session % 500)", timestampMicros: Int64(step * 10_000_000), receivedAtMicros: Int64(step * 10_000_000), currentTimestamp: Double(step * 10), durationSeconds: 200, title: "Title \(session % 500)"))
    }
}
let aggregator = ContentAggregator()
let clock = ContinuousClock()
let cpu0 = cpu()
let elapsed = clock.measure {
    var index = 0
    while index < observations.count {
        let end = min(index + 5_000, observations.count)
        aggregator.observe(Array(observations[index..<end]))
        index = end
    }
}
let seconds = cpu() - cpu0
print("\(observations.count) events, \(sessions) sessions: \(seconds) s CPU = \(Int(Double(observations.count) / seconds)) events/s")
// expire() scans every session: time one pass over 50k active sessions (none expires).
let active = ContentAggregator()
active.observe(Array(observations[0..<sessions]))
let scan0 = cpu()
for _ in 0..<10 { active.expire(now: 0) }
print("expire, \(active.snapshot(top: 0).activeSessions) active sessions: \((cpu() - scan0) / 10 * 1000) ms CPU per pass")
