/// Playhead's release version: `playhead --version` prints it, and the lake's Parquet files carry it in
/// their footer's `created_by` ("playhead version X.Y.Z", the form parquet-mr and Arrow parse).
public enum PlayheadVersion {
    public static let current = "0.1.0"
    /// The Parquet footer's `created_by` for files that Playhead writes.
    public static let parquetCreatedBy = "playhead version \(current)"
}
