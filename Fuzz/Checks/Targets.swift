extension FuzzChecks {
    /// A check: the problems it finds in one input.
    public typealias Target = @Sendable (UnsafeRawBufferPointer) -> [String]

    /// Every check, by the name `scripts/fuzz` and `Fuzz/corpus/<name>/` use.
    public static let targets: [String: Target] = [
        "events": eventDecoder,
        "records": records,
        "gzip": gzip,
        "segments": segments,
        "xml": xml,
    ]
}
