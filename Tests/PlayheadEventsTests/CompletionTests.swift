import Testing
import PlayheadEvents

@Suite struct CompletionTests {
    @Test("a completion is a position at or beyond 95 % of the duration, as DuckDB compares it with the decimal 0.95 (cast to the column's DOUBLE): one unit in the last place below that boundary is not one")
    func exactBoundary() {
        // JavaScript's 0.95 * 3; 0.95 * 3.0 in doubles is the same number, so `>=` in doubles said yes.
        #expect(0.95 * 3.0 == 2.8499999999999996)
        #expect(!Completion.reached(position: 2.8499999999999996, duration: 3))
        #expect(Completion.reached(position: 2.85, duration: 3))
        #expect(Completion.reached(position: 95, duration: 100) && !Completion.reached(position: 95.0.nextDown, duration: 100))
        #expect(Completion.reached(position: 8436, duration: 8880) && !Completion.reached(position: 8436.0.nextDown, duration: 8880))
        #expect(!Completion.reached(position: 0, duration: 0) && !Completion.reached(position: 5, duration: -1))
        #expect(Completion.reached(position: 1e300, duration: 1) && !Completion.reached(position: 0, duration: 1))
        // Every duration from 1 s to 40,000 s: the boundary is 0.95 × d rounded once to the nearest
        // double, which DuckDB compares the column with: reached at it, not one unit below.
        for duration in Int64(1)...40_000 {
            let boundary = Double(95 * duration) / 100
            #expect(Completion.reached(position: boundary, duration: duration))
            #expect(!Completion.reached(position: boundary.nextDown, duration: duration))
        }
        // Where that double is below the exact share, the position a player sends at 95 % counts,
        // as DuckDB counts it (the exact comparison did not: an outside review).
        for (position, duration) in [(0.95, Int64(1)), (12.35, 13), (16.15, 17), (10.45, 11), (950002.85, 1_000_003)] {
            #expect(Completion.reached(position: position, duration: duration), "\(position) of \(duration)")
        }
        #expect(Completion.reached(position: 90, duration: 100, percent: 90) && !Completion.reached(position: 89.99, duration: 100, percent: 90))
        // Beyond 2^53 / 95 s: past any position the edge takes.
        #expect(!Completion.reached(position: 1e12, duration: Int64.max) && !Completion.reached(position: 1e12, duration: 1 << 60))
    }
}
