/// When a position counts as a completion of its content: at or beyond a whole percentage of the
/// content's `duration_seconds`, as SQL over the lake decides it.
///
/// DuckDB reads `0.95 * duration_seconds` as a DECIMAL, exact, and compares a DOUBLE column with it
/// cast to DOUBLE: `current_timestamp >= CAST(0.95 * CAST(duration_seconds AS DECIMAL(22,0)) AS
/// DOUBLE)` in its plan. So the boundary is the exact share rounded once to the nearest double, and
/// that is what is compared here: `percent × duration` is exact in an integer and in a double below
/// 2^53, and one division by 100 rounds it correctly. Until 2026-12-04 it was `position >= 0.95 *
/// Double(duration)` in doubles, two roundings, where `0.95 × 3` is `2.8499999999999996` and a
/// `current_timestamp` of that counted (a probe); then the exact decimal, which the rounded boundary
/// is below for about 40 % of durations (`0.95` of 1 s, `12.35` of 13 s), where the rollups counted
/// no completion and the SQL did (an outside review, 2026-12-07, checked against DuckDB).
public enum Completion {
    /// The share of `duration_seconds` a position must reach: 95 %.
    public static let percent = 95

    /// Whether `position` is at or beyond `percent` % of `duration` (never for a duration of 0 or less).
    @inlinable
    public static func reached(position: Double, duration: Int64, percent: Int = Completion.percent) -> Bool {
        guard duration > 0 else { return false }
        let (product, overflow) = Int64(percent).multipliedReportingOverflow(by: duration)
        // Past 2^53 the share is over 9e13 s, beyond any position the edge takes (at most 1e12).
        guard !overflow, product <= 1 << 53 else { return position >= Double(duration) * (Double(percent) / 100) }
        return position >= Double(product) / 100
    }
}
