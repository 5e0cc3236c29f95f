import Foundation
import PlayheadTestSupport
import Testing

/// deploy/grafana: the provisioning files and the dashboards.
@Suite("Grafana dashboards")
struct DashboardTests {
    static let dashboards = ["deploy/grafana/dashboards/pipeline-health.json", "deploy/grafana/dashboards/live-content.json"]

    /// What each dashboard must show: metric or recording-rule names its expressions must mention.
    static let required: [String: Set<String>] = [
        "deploy/grafana/dashboards/pipeline-health.json": [
            "job:playhead_events_accepted:rate1m", "job:playhead_events_reject_ratio:rate5m",
            "job_reason:playhead_events_rejected:rate5m",
            "job_route:playhead_http_server_request_duration_seconds:p50_5m",
            "job_route:playhead_http_server_request_duration_seconds:p99_5m",
            "playhead_log_append_duration_seconds_bucket", "playhead_log_fsync_batch_records_bucket",
            "playhead_log_disk_free_bytes", "playhead_consumer_lag_events", "playhead_consumer_partitions_assigned",
            "job_dataset:playhead_lake_rows_written:rate1m", "job:playhead_lake_flush_duration_seconds:p99_5m",
            "playhead_lake_flush_failures_total", "playhead_s3_requests_total", "playhead_s3_retries_total",
            "playhead_s3_requests_unanswered",
            "playhead_process_resident_memory_bytes",
        ],
        "deploy/grafana/dashboards/live-content.json": [
            "playhead_concurrent_viewers", "playhead_active_sessions", "playhead_plays_started_total",
            "playhead_watch_time_seconds_total", "playhead_completions_total", "playhead_ad_plays_total",
            "playhead_content_events_total",
        ],
    ]

    static func load(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: Deploy.url(path))
        guard let dashboard = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestSupportError("\(path) is not a JSON object")
        }
        return dashboard
    }

    /// Every panel, rows' nested panels included.
    static func panels(_ dashboard: [String: Any]) -> [[String: Any]] {
        var result: [[String: Any]] = []
        for panel in dashboard.dicts("panels") {
            result.append(panel)
            result += panel.dicts("panels")
        }
        return result
    }

    static func provisionedDatasourceUID() async throws -> String {
        let document = try await Deploy.yamlDocument("deploy/grafana/provisioning/datasources/prometheus.yml")
        let sources = document.dicts("datasources")
        #expect(sources.count == 1)
        #expect(sources.first?.string("type") == "prometheus")
        return sources.first?.string("uid") ?? ""
    }

    @Test("the provisioning files name a Prometheus datasource and the dashboards folder")
    func provisioning() async throws {
        let uid = try await Self.provisionedDatasourceUID()
        #expect(!uid.isEmpty)
        let providers = try await Deploy.yamlDocument("deploy/grafana/provisioning/dashboards/playhead.yml").dicts("providers")
        #expect(providers.count == 1)
        #expect(providers.first?.string("type") == "file")
        let path = providers.first?.dict("options")?.string("path") ?? ""
        #expect(path.hasPrefix("/"), "dashboard provider path '\(path)'")
    }

    @Test("each dashboard is valid JSON with a unique uid, unique panel ids and a layout", arguments: DashboardTests.dashboards)
    func structure(_ path: String) throws {
        let dashboard = try Self.load(path)
        #expect(!(dashboard.string("uid") ?? "").isEmpty, "\(path) has no uid")
        #expect(!(dashboard.string("title") ?? "").isEmpty, "\(path) has no title")
        #expect(dashboard.number("schemaVersion") != nil)
        let panels = Self.panels(dashboard)
        #expect(panels.count >= 8, "\(path) has \(panels.count) panels")
        let ids = panels.compactMap { $0.number("id") }
        #expect(ids.count == panels.count, "\(path): a panel has no id")
        #expect(Set(ids).count == ids.count, "\(path): duplicate panel ids \(ids)")
        for panel in panels {
            let grid = panel.dict("gridPos")
            #expect(grid?.number("w") != nil && grid?.number("h") != nil, "\(path) panel \(panel.string("title") ?? "?") has no gridPos")
            if let x = grid?.number("x"), let w = grid?.number("w") { #expect(x + w <= 24) }
        }
        let uids = try Self.dashboards.map { try Self.load($0).string("uid") ?? "" }
        #expect(Set(uids).count == uids.count, "duplicate dashboard uids \(uids)")
    }

    @Test("every query panel and target uses the `datasource` variable, whose default is the provisioned datasource", arguments: DashboardTests.dashboards)
    func datasources(_ path: String) async throws {
        let uid = try await Self.provisionedDatasourceUID()
        let dashboard = try Self.load(path)
        let variables = dashboard.dict("templating")?.dicts("list") ?? []
        let datasource = variables.first { $0.string("name") == "datasource" }
        #expect(datasource?.string("type") == "datasource" && datasource?.string("query") == "prometheus", "\(path): no Prometheus datasource variable")
        #expect(datasource?.dict("current")?.string("value") == uid, "\(path): the datasource variable's default is not the provisioned uid \(uid)")
        let job = variables.first { $0.string("name") == "job" }
        #expect(job?.dict("datasource")?.string("uid") == "${datasource}", "\(path): the job variable's datasource")
        #expect(job?["includeAll"] as? Bool == true && job?["multi"] as? Bool == true && job?.string("allValue") == ".*", "\(path): the job variable")
        let jobQuery = job?.dict("query")?.string("query") ?? ""
        let jobSeries = jobQuery.wholeMatch(of: try Regex(#"label_values\((playhead_[a-z_]+), job\)"#))?.output[1].substring.map(String.init)
        #expect(try jobSeries.map { try Deploy.contractSeriesNames().contains($0) } == true, "\(path): the job variable's query \(jobQuery)")
        for panel in Self.panels(dashboard) where panel.string("type") != "row" {
            let title = panel.string("title") ?? "?"
            #expect(panel.dict("datasource")?.string("uid") == "${datasource}", "\(path) \(title): panel datasource")
            #expect(panel.dict("datasource")?.string("type") == "prometheus", "\(path) \(title): panel datasource type")
            let targets = panel.dicts("targets")
            #expect(!targets.isEmpty, "\(path) \(title) has no queries")
            for target in targets {
                #expect(target.dict("datasource")?.string("uid") == "${datasource}", "\(path) \(title) target \(target.string("refId") ?? "?")")
                #expect(!(target.string("expr") ?? "").isEmpty, "\(path) \(title): empty expr")
            }
        }
    }

    @Test("every series an expression reads is filtered by the `job` variable", arguments: DashboardTests.dashboards)
    func filteredByJob(_ path: String) throws {
        let known = try Deploy.contractSeriesNames()
        for panel in Self.panels(try Self.load(path)) {
            for target in panel.dicts("targets") {
                let expression = target.string("expr") ?? ""
                // Each series name: followed by a selector whose first matcher is the job variable's.
                let selectors = expression.matches(of: try Regex(#"([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?"#)).filter { match in
                    let name = String(match.output[1].substring ?? "")
                    return known.contains(name) || name.contains(":")
                }
                #expect(!selectors.isEmpty, "\(path) \(panel.string("title") ?? "?"): \(expression)")
                for selector in selectors {
                    let braces = selector.output[2].substring.map(String.init) ?? ""
                    #expect(braces.hasPrefix(#"{job=~"$job""#), "\(path) \(panel.string("title") ?? "?"): \(selector.output[0].substring ?? "") in \(expression)")
                }
            }
        }
    }

    @Test("every expression is valid PromQL (promtool, with the variables given values)", arguments: DashboardTests.dashboards)
    func expressionsParse(_ path: String) async throws {
        var rules = "groups:\n  - name: dashboard\n    rules:\n"
        var count = 0
        for panel in Self.panels(try Self.load(path)) {
            for target in panel.dicts("targets") {
                let expression = (target.string("expr") ?? "")
                    .replacingOccurrences(of: "$__rate_interval", with: "1m")
                    .replacingOccurrences(of: "$__range", with: "1h")
                    .replacingOccurrences(of: "$job", with: ".*")
                let quoted = "'" + expression.replacingOccurrences(of: "'", with: "''") + "'"  // YAML single quotes
                rules += "      - record: dashboard:expression:\(count)\n        expr: \(quoted)\n"
                count += 1
            }
        }
        let directory = try TemporaryDirectory(prefix: "dashboard-promql")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let file = directory.appending("rules.yml")
        try Data(rules.utf8).write(to: file)
        let result = try await Deploy.promtool(["check", "rules", file.path])
        #expect(result.status == 0 && result.stdout.contains("\(count) rules found"), "\(path): \(result.stdout)\n\(result.stderr)")
    }

    @Test("every expression names only contract metrics, recording rules and their labels", arguments: DashboardTests.dashboards)
    func knownMetricNames(_ path: String) async throws {
        let known = try Deploy.contractSeriesNames().union(try await Deploy.recordingRuleNames())
        let knownLabels = try Deploy.contractLabels()
        var seen = Set<String>()
        for panel in Self.panels(try Self.load(path)) {
            for target in panel.dicts("targets") {
                let expression = target.string("expr") ?? ""
                let names = Deploy.metricNames(inPromQL: expression)
                #expect(!names.isEmpty, "\(path) \(panel.string("title") ?? "?"): no metric in \(expression)")
                let unknown = names.subtracting(known)
                #expect(unknown.isEmpty, "\(path) \(panel.string("title") ?? "?"): unknown \(unknown.sorted()) in \(expression)")
                seen.formUnion(names)
                // Labels in matchers, grouping clauses and the legend exist on the contract's metrics.
                var labels = Deploy.labelNames(inPromQL: expression)
                let legend = target.string("legendFormat") ?? ""
                for match in legend.matches(of: try Regex(#"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}"#)) {
                    labels.insert(String(match.output[1].substring ?? ""))
                }
                let unknownLabels = labels.subtracting(knownLabels)
                #expect(unknownLabels.isEmpty, "\(path) \(panel.string("title") ?? "?"): unknown labels \(unknownLabels.sorted())")
            }
        }
        let missing = (Self.required[path] ?? []).subtracting(seen)
        #expect(missing.isEmpty, "\(path) shows nothing of \(missing.sorted())")
    }

    /// docs/dashboards.md: the consumer-lag panels read each process's own series, so that a member
    /// of a group that falls behind shows as itself. Until 2026-12-07 they summed the processes of a
    /// group (two serve processes with lags 20 and 30 showed 50 as the worst lag), an outside review.
    @Test("the consumer-lag panels show each process's series, with its consumer and instance, not sums over processes", arguments: DashboardTests.dashboards)
    func consumerLagPerProcess(_ path: String) throws {
        var seen = 0
        for panel in Self.panels(try Self.load(path)) {
            let title = panel.string("title") ?? "?"
            for target in panel.dicts("targets") {
                let expression = target.string("expr") ?? ""
                guard expression.contains("playhead_consumer_lag_events{") else { continue }
                seen += 1
                let adds = expression.contains(try Regex(#"\b(sum|avg|count)\b|\bby\s*\("#))
                #expect(!adds, "\(path) \(title): \(expression) adds processes together")
                if panel.string("type") == "timeseries" {
                    let legend = target.string("legendFormat") ?? ""
                    #expect(legend.contains("{{consumer}}") && legend.contains("{{instance}}"), "\(path) \(title): legend '\(legend)'")
                }
            }
        }
        if path.hasSuffix("pipeline-health.json") { #expect(seen >= 3, "\(path): \(seen) consumer-lag targets") }
    }

    @Test("the panels the runbook and the scaling guide send an operator to exist: '*Pipeline health → T*', '*Live content → T*', and any *T* naming a rate or a lag")
    func panelsNamedInTheDocuments() throws {
        var titles: [String: Set<String>] = [:]
        for path in Self.dashboards {
            let dashboard = try Self.load(path)
            titles[dashboard.string("title") ?? path, default: []].formUnion(Self.panels(dashboard).compactMap { $0.string("title") })
        }
        let every = titles.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        var named = 0
        for document in ["docs/runbook.md", "docs/scaling.md", "docs/dashboards.md"] {
            let text = try String(contentsOf: Deploy.url(document), encoding: .utf8)
            // Italic spans on one line: *…*.
            for match in text.matches(of: try Regex(#"(?:^|[^*\w])\*([^*\n]+)\*(?![*\w])"#).anchorsMatchLineEndings()) {
                guard let span = match.output[1].substring.map(String.init) else { continue }
                let parts = span.components(separatedBy: " → ")
                if parts.count == 2 {
                    named += 1
                    let board = titles.first { $0.key.hasSuffix(parts[0]) }?.value
                    #expect(board?.contains(parts[1]) == true, "\(document): *\(span)*: no panel '\(parts[1])' in '\(parts[0])'")
                } else if span.hasSuffix("/s") || span.lowercased().contains("lag") {
                    named += 1
                    // A panel's name without its dashboard (a panel was renamed, and the runbook sent
                    // operators to "Consumer lag by group", an outside review).
                    #expect(every.contains(span), "\(document): *\(span)* names no panel")
                }
            }
        }
        #expect(named >= 5, "\(named) panels named")
    }

    @Test("the committed dashboards are what scripts/gen-dashboards writes")
    func generatedFilesAreCurrent() async throws {
        let directory = try TemporaryDirectory(prefix: "dashboards")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let result = try await runCommand(TestEnvironment.python, [Deploy.path("scripts/gen-dashboards"), "--out", directory.path], timeout: .seconds(60))
        #expect(result.status == 0, "\(result.stderr)")
        for path in Self.dashboards {
            let name = URL(fileURLWithPath: path).lastPathComponent
            let fresh = try Data(contentsOf: directory.appending(name))
            let committed = try Data(contentsOf: Deploy.url(path))
            #expect(fresh == committed, "\(path) differs from scripts/gen-dashboards' output: edit the script and run it again")
        }
    }

    @Test("docs/metrics-names.txt holds the contract's names")
    func contractList() throws {
        let (names, histograms) = try Deploy.contractMetrics()
        #expect(names.count >= 30)
        #expect(names.allSatisfy { $0.hasPrefix("playhead_") })
        #expect(histograms == [
            "playhead_http_server_request_duration_seconds", "playhead_log_append_duration_seconds",
            "playhead_log_fsync_batch_records", "playhead_lake_flush_duration_seconds",
        ])
        // The names DESIGN.md requires by name.
        #expect(names.isSuperset(of: [
            "playhead_events_accepted_total", "playhead_events_rejected_total", "playhead_consumer_lag_events",
            "playhead_lake_files_written_total", "playhead_lake_bytes_written_total", "playhead_concurrent_viewers",
            "playhead_watch_time_seconds_total",
        ]))
    }
}
