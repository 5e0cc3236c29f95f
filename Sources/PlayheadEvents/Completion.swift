/// When a position counts as a completion of its content: at or beyond a whole percentage of the
/// content's `duration_seconds`, compared exactly.
///
/// `position >= 0.95 * Double(duration)` in doubles is off by one unit in the last place at the
/// boundary: 0.95 is not a double, so a player's `current_timestamp` of `2.8499999999999996` (what
/// JavaScript gives for `0.95 * 3`) counted as a completion of 3 s, while SQL over the lake, which
/// reads `0.95` as a decimal (DuckDB: `0.95 * duration_seconds` is DECIMAL), did not (a probe,
/// 2026-12-04). Here `100 × position − percent × duration` is computed with one rounding (a fused
/// multiply-add), which keeps the sign of the exact difference; `percent × duration` is exact below
/// 2^53.
public enum Completion {
    /// The share of `duration_seconds` a position must reach: 95 %.
    public static let percent = 95

    /// Whether `position` is at or beyond `percent` % of `duration` (never for a duration of 0 or less).
    @inlinable
    public static func reached(position: Double, duration: Int64, percent: Int = Completion.percent) -> Bool {
        guard duration > 0 else { return false }
        return (-(Double(percent) * Double(duration))).addingProduct(position, 100) >= 0
    }
}
