// PlayheadMetrics: the pipeline's metrics (swift-metrics over swift-prometheus), the content KPIs
// consumer (group `metrics`) and the live page. Metric names and meanings: docs/metrics.md.
//
//   PlayheadTelemetry        bootstrap + GET /metrics rendering (with HELP texts)
//   ProcessMetricsService    playhead_process_* from /proc/self
//   ContentAggregator        sessions → concurrent viewers, plays, watch time, completions, ad plays
//   ContentMetricsConsumer   reads the events topic into the aggregator and the content instruments
//   LiveStats, LiveStatsSampler, LivePage   GET / and GET /live.json
