/// Where and how the embedded segment log keeps its files.
public struct EmbeddedLogConfiguration: Sendable {
    /// The log's root directory: `<directory>/<topic>/<base offset>.log` and `<directory>/groups/`.
    public var directory: String
    /// A segment is closed and a new one started once it holds at least this many bytes.
    public var segmentBytes: Int64 = 128 << 20
    /// Appends waiting for the writer beyond this many bytes fail at once (`LogError.Code.overloaded`).
    public var maxQueuedBytes: Int = 64 << 20
    /// Closed segments older than this (by last write) may be deleted once every group has read them.
    public var retentionAge: Duration? = .seconds(7 * 24 * 3600)
    /// Closed segments may be deleted, oldest first, while a topic holds more bytes than this
    /// (and every group has read them).
    public var retentionBytes: Int64? = nil
    /// Consumer groups that must read every record: until such a group has committed an offset,
    /// retention treats it as having read nothing (so it deletes nothing), instead of leaving it out.
    /// `serve` and `ingest` name the lake writer's group, `lake`, which commits only after its first
    /// flush: without this, a lake that could not be written yet (or a `store` not started yet) lost
    /// the segments that retention took meanwhile. Readers know them too: records missing before
    /// such a group's position, when it has never committed, were deleted by hand, not by
    /// retention (the message blamed retention, a drill). Default: none.
    public var requiredGroups: [String] = []
    /// Appends fail with `LogError.Code.full` while the log's file system has less free space than this.
    public var minimumFreeBytes: Int64 = 256 << 20
    /// Partitions per topic. The embedded log keeps one partition (0) per topic; other values are ignored.
    public var partitions: Int32 = 1
    /// The largest record value accepted.
    public var maxRecordBytes: Int = 16 << 20
    /// How often ``EmbeddedLog/run()`` applies retention by age. With ``retentionBytes`` it runs
    /// every second: at 30 s, the log went 9 × past a 4 MiB limit between runs, and a disk sized by
    /// the limit refused events for a quarter of each period (a probe).
    public var retentionInterval: Duration = .seconds(30)
    /// Small group commits write this many zero bytes past the end of the active segment, so that the
    /// next commits overwrite space the file already has: their `fdatasync` then flushes data only,
    /// not the file's size (on ext4 that halves the cost of a small commit). A commit of at least
    /// ``preallocateBelowBytes`` grows the file directly. The padding is cut off when a segment is
    /// closed, and on restart. 0 turns preallocation off.
    public var preallocateBytes: Int = 1 << 20
    /// Commits smaller than this extend the zero-filled space; larger ones grow the file directly
    /// (their size is worth one metadata write, and zero-filling would double what they write).
    public var preallocateBelowBytes: Int = 64 << 10
    /// Under concurrent load (the previous group held more than one batch), a group commit waits
    /// until as many batches are queued as the previous group held, or this long after the previous
    /// commit started, whichever comes first, so that more appends share each fsync. A lone writer
    /// (groups of one batch) and a queue of 1 MiB or more never wait. Zero: commit as soon as the
    /// previous fsync returns.
    public var groupCommitInterval: Duration = .milliseconds(1)
    /// How long a failed append keeps the producer unready (``LogProducer/unavailableReason``)
    /// when no append succeeds after it: then it is tried again.
    public var failureUnreadyFor: Duration = .seconds(10)
    /// Pages of the log's files this far (in bytes) behind the last write stay in the page cache;
    /// older ones are dropped (`posix_fadvise(DONTNEED)`) once fsynced, so that new writes reuse
    /// memory the kernel already holds instead of growing the cache. Readers this far behind read
    /// from disk. 0 keeps everything cached (the kernel decides).
    public var pageCacheBytes: Int64 = 256 << 20
    /// How often a read-only log (another process writes) looks for new records.
    public var readOnlyPollInterval: Duration = .milliseconds(50)
    /// A read-only reader that stays this long at a record of the last segment that cannot be read
    /// and is not zero-filled space asks the writing process to close that segment early (the
    /// topic's `roll-request` file, docs/log-format.md): it may be damage, which readers can step
    /// past only in a closed segment. The writer checks that the record is in its durable part and
    /// reads it again first, so a slow write or a stale request closes nothing.
    /// Nil: never ask (a reader that reads once, `log dump` without `--follow`, stops at such a
    /// record instead: ``EmbeddedConsumer/caughtUp()``).
    public var readOnlyRollRequestAfter: Duration? = .seconds(2)

    public init(directory: String) {
        self.directory = directory
    }
}
