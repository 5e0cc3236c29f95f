import Testing
import PlayheadEvents

@Suite struct CompletionTests {
    @Test("a completion is a position at or beyond 95 % of the duration, compared exactly as SQL compares with the decimal 0.95: one unit in the last place below the boundary is not one")
    func exactBoundary() {
        // JavaScript's 0.95 * 3; 0.95 * 3.0 in doubles is the same number, so `>=` in doubles said yes.
        #expect(0.95 * 3.0 == 2.8499999999999996)
        #expect(!Completion.reached(position: 2.8499999999999996, duration: 3))
        #expect(Completion.reached(position: 2.85, duration: 3))
        #expect(Completion.reached(position: 95, duration: 100) && !Completion.reached(position: 95.0.nextDown, duration: 100))
        #expect(Completion.reached(position: 8436, duration: 8880) && !Completion.reached(position: 8436.0.nextDown, duration: 8880))
        #expect(!Completion.reached(position: 0, duration: 0) && !Completion.reached(position: 5, duration: -1))
        #expect(Completion.reached(position: 1e300, duration: 1) && !Completion.reached(position: 0, duration: 1))
        // Every duration from 1 s to 40,000 s: the boundary is 0.95 × d as a decimal, exactly. The
        // double nearest to it is within half a unit of it, so the next double up is beyond it and
        // the next one down short of it.
        for duration in Int64(1)...40_000 {
            let boundary = Double(95 * duration) / 100
            #expect(Completion.reached(position: boundary.nextUp, duration: duration))
            #expect(!Completion.reached(position: boundary.nextDown, duration: duration))
            if duration % 20 == 0 { #expect(Completion.reached(position: boundary, duration: duration)) }
        }
    }
}
