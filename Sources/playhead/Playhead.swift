import ArgumentParser

@main
struct Playhead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "playhead",
        abstract: "Playhead: a content-analytics pipeline (ingest, durable log, Parquet lake, live metrics)."
    )
}
