import ArgumentParser
import PlayheadEvents

@main
struct Playhead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "playhead",
        abstract: "Playhead: a content-analytics pipeline (ingest, durable log, Parquet lake, live metrics).",
        discussion: """
            `playhead serve` runs everything in one process on the embedded defaults (the log in \
            ./data/log, the lake in ./data/lake). `ingest`, `store` and `observe` run each part alone, \
            for scaling out over Kafka and S3. See README.md and docs/.
            """,
        version: PlayheadVersion.current,
        subcommands: [
            ServeCommand.self, IngestCommand.self, StoreCommand.self, ObserveCommand.self, ImportCommand.self,
            LoadgenCommand.self, LogCommand.self,
        ]
    )
}
