import Foundation
import PlayheadTestSupport

/// Paths, tools and parsers shared by the deployment-file tests.
enum Deploy {
    static var root: URL { TestEnvironment.repoRoot }

    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    static func path(_ relative: String) -> String { url(relative).path }

    static func read(_ relative: String) throws -> String {
        try String(contentsOf: url(relative), encoding: .utf8)
    }

    /// The files of a folder (not recursive) whose names end with one of `extensions`, sorted.
    static func files(in relative: String, extensions: [String]) throws -> [String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: path(relative))
        return names.filter { name in extensions.contains { name.hasSuffix($0) } }
            .filter { name in
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: path("\(relative)/\(name)"), isDirectory: &isDirectory)
                return !isDirectory.boolValue
            }
            .sorted()
            .map { "\(relative)/\($0)" }
    }

    /// promtool: `$PROMTOOL`, else /usr/bin/promtool (apt `prometheus`), else the venv's folder.
    static var promtoolPath: String {
        if let path = ProcessInfo.processInfo.environment["PROMTOOL"], !path.isEmpty { return path }
        for candidate in ["/usr/bin/promtool", "/usr/local/bin/promtool", TestEnvironment.venvBin.appendingPathComponent("promtool").path]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return "/usr/bin/promtool"
    }

    /// Runs promtool with `arguments` (paths absolute or relative to the working directory).
    static func promtool(_ arguments: [String]) async throws -> CommandResult {
        try await runCommand(promtoolPath, arguments, timeout: .seconds(300))
    }

    // MARK: YAML

    /// Parses YAML files with PyYAML (`safe_load_all`) and returns each file's documents as JSON
    /// values (dictionaries, arrays, strings, numbers), keyed by the path given.
    static func yamlDocuments(_ relativePaths: [String]) async throws -> [String: [Any]] {
        let script = """
            import json, sys, yaml
            out = {}
            for name in sys.argv[2:]:
                with open(sys.argv[1] + "/" + name) as f:
                    out[name] = [d for d in yaml.safe_load_all(f) if d is not None]
            print(json.dumps(out, default=str))
            """
        let output = try await runPython(script, arguments: [root.path] + relativePaths, timeout: .seconds(60))
        let json = try JSONSerialization.jsonObject(with: Data(output.utf8))
        guard let dictionary = json as? [String: [Any]] else { throw TestSupportError("unexpected YAML dump: \(output.prefix(200))") }
        return dictionary
    }

    static func yamlDocument(_ relativePath: String) async throws -> [String: Any] {
        let documents = try await yamlDocuments([relativePath])
        guard let first = documents[relativePath]?.first as? [String: Any] else {
            throw TestSupportError("\(relativePath): no YAML mapping")
        }
        return first
    }

    // MARK: Metric names

    /// The contract's metric names (docs/metrics-names.txt): every name and the histograms among them.
    static func contractMetrics() throws -> (names: Set<String>, histograms: Set<String>) {
        var names = Set<String>()
        var histograms = Set<String>()
        for line in try read("docs/metrics-names.txt").split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: " ").map(String.init)
            names.insert(fields[0])
            if fields.count > 1, fields[1] == "histogram" { histograms.insert(fields[0]) }
        }
        return (names, histograms)
    }

    /// The label names the contract's metrics carry (third column of docs/metrics-names.txt), plus
    /// those Prometheus adds (`job`, `instance`, the scrape configs' `component`) and histograms' `le`.
    static func contractLabels() throws -> Set<String> {
        var labels: Set<String> = ["job", "instance", "component", "le"]
        for line in try read("docs/metrics-names.txt").split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ")
            if fields.count > 2 { labels.formUnion(fields[2].split(separator: ",").map(String.init)) }
        }
        return labels
    }

    /// The label names a PromQL expression uses: in matchers (`{route="/v1/events"}`) and in grouping
    /// clauses (`by (reason)`, `on (job, instance)`).
    static func labelNames(inPromQL expression: String) -> Set<String> {
        var text = expression
        for pattern in [#""(?:[^"\\]|\\.)*""#, #"'(?:[^'\\]|\\.)*'"#, #"`[^`]*`"#] {
            text = text.replacing(try! Regex(pattern), with: "\"\"")
        }
        var labels = Set<String>()
        let name = try! Regex(#"[A-Za-z_][A-Za-z0-9_]*"#)
        for braces in text.matches(of: try! Regex(#"\{([^}]*)\}"#)) {
            let inside = String(braces.output[1].substring ?? "")
            for matcher in inside.matches(of: try! Regex(#"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)"#)) {
                labels.insert(String(matcher.output[1].substring ?? ""))
            }
        }
        for clause in text.matches(of: try! Regex(#"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"#)) {
            let inside = String(clause.output[1].substring ?? "")
            for label in inside.matches(of: name) { labels.insert(String(inside[label.range])) }
        }
        return labels
    }

    /// Every series name a scrape of the contract's metrics may hold (histograms as _bucket/_sum/_count).
    static func contractSeriesNames() throws -> Set<String> {
        let (names, histograms) = try contractMetrics()
        var series = names
        for histogram in histograms {
            series.formUnion(["\(histogram)_bucket", "\(histogram)_sum", "\(histogram)_count"])
        }
        return series
    }

    /// The rule groups of a Prometheus rule file.
    static func rules(in relativePath: String) async throws -> [[String: Any]] {
        let document = try await yamlDocument(relativePath)
        let groups = document["groups"] as? [[String: Any]] ?? []
        return groups.flatMap { $0["rules"] as? [[String: Any]] ?? [] }
    }

    static func recordingRuleNames() async throws -> [String] {
        try await rules(in: "deploy/prometheus/recording-rules.yml").compactMap { $0["record"] as? String }
    }

    private static let promQLKeywords: Set<String> = [
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
        "offset", "inf", "nan", "Inf", "NaN", "atan2",
    ]

    /// The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    /// label names (inside braces or grouping clauses), durations, numbers, strings or Grafana variables.
    static func metricNames(inPromQL expression: String) -> Set<String> {
        var text = expression
        let erase: [String] = [
            #""(?:[^"\\]|\\.)*""#,                       // "strings"
            #"'(?:[^'\\]|\\.)*'"#,                       // 'strings'
            #"`[^`]*`"#,                                 // `raw strings`
            #"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*"#,    // Grafana variables
            #"\{[^}]*\}"#,                               // label matchers
            #"\[[^\]]*\]"#,                              // ranges and subqueries
            #"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"#, // grouping labels
        ]
        for pattern in erase {
            text = text.replacing(try! Regex(pattern), with: " ")
        }
        var names = Set<String>()
        let token = try! Regex(#"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?:ms|[smhdwy])*|\.[0-9]+|[A-Za-z_:][A-Za-z0-9_:]*"#)
        for match in text.matches(of: token) {
            let word = String(text[match.range])
            guard let first = word.first, first.isLetter || first == "_" || first == ":" else { continue }
            if promQLKeywords.contains(word) { continue }
            // A function call: the identifier is followed by "(".
            let rest = text[match.range.upperBound...].drop { $0 == " " || $0 == "\n" || $0 == "\t" }
            if rest.first == "(" { continue }
            names.insert(word)
        }
        return names
    }

    // MARK: The CLI's flags

    /// The long flags of each `playhead` subcommand, read from the CLI's source (Sources/playhead):
    /// a command's own `@Option`/`@Flag` properties and those of its `@OptionGroup`s; and `shared`,
    /// the flags of every option group any command uses (storage, flush, HTTP, metrics, logging).
    static func cliFlags() throws -> (commands: [String: Set<String>], shared: Set<String>) {
        let folder = "Sources/playhead"
        var source = ""
        for file in try files(in: folder, extensions: [".swift"]) { source += try read(file) + "\n" }
        return parseCLIFlags(source)
    }

    static func parseCLIFlags(_ source: String) -> (commands: [String: Set<String>], shared: Set<String>) {
        struct Declaration { var flags: Set<String> = []; var groups: [String] = []; var command: String? }
        var declarations: [String: Declaration] = [:]
        let header = try! Regex(#"struct\s+([A-Za-z_][A-Za-z0-9_]*)\s*:[^{]*\{"#)
        for match in source.matches(of: header) {
            let name = String(match.output[1].substring ?? "")
            // The body: up to the first closing brace at the start of a line (top-level declarations
            // end there in formatted Swift; braces inside string literals do not count).
            let end = source[match.range.upperBound...].range(of: "\n}")?.lowerBound ?? source.endIndex
            let body = String(source[match.range.upperBound..<end])
            var declaration = Declaration()
            let property = try! Regex(#"@(Option|Flag)\s*(\((?:[^()]|\([^()]*\))*\))?\s*(?:public\s+)?var\s+([A-Za-z_][A-Za-z0-9_]*)"#)
            for option in body.matches(of: property) {
                let arguments = String(option.output[2].substring ?? "")
                let variable = String(option.output[3].substring ?? "")
                if let custom = arguments.firstMatch(of: try! Regex(#"customLong\(\s*"([^"]+)""#)) {
                    declaration.flags.insert("--" + String(custom.output[1].substring ?? ""))
                } else {
                    declaration.flags.insert("--" + kebab(variable))
                }
            }
            let group = try! Regex(#"@OptionGroup[^\n]*?var\s+[A-Za-z_][A-Za-z0-9_]*\s*:\s*([A-Za-z_][A-Za-z0-9_]*)"#)
            for option in body.matches(of: group) { declaration.groups.append(String(option.output[1].substring ?? "")) }
            if let command = body.firstMatch(of: try! Regex(#"commandName:\s*"([^"]+)""#)) {
                declaration.command = String(command.output[1].substring ?? "")
            }
            declarations[name] = declaration
        }
        func flags(of name: String, seen: Set<String> = []) -> Set<String> {
            guard let declaration = declarations[name], !seen.contains(name) else { return [] }
            var result = declaration.flags
            for group in declaration.groups { result.formUnion(flags(of: group, seen: seen.union([name]))) }
            return result
        }
        var commands: [String: Set<String>] = [:]
        var shared = Set<String>()
        for (name, declaration) in declarations {
            if let command = declaration.command { commands[command] = flags(of: name) }
            for group in declaration.groups { shared.formUnion(flags(of: group)) }
        }
        return (commands, shared)
    }

    /// `maxBodyBytes` -> `max-body-bytes` (swift-argument-parser's `.long` naming).
    static func kebab(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                if !result.isEmpty { result.append("-") }
                result.append(contentsOf: character.lowercased())
            } else {
                result.append(character)
            }
        }
        return result
    }
}

// MARK: JSON helpers

extension Dictionary where Key == String, Value == Any {
    func dict(_ key: String) -> [String: Any]? { self[key] as? [String: Any] }
    func array(_ key: String) -> [Any]? { self[key] as? [Any] }
    func dicts(_ key: String) -> [[String: Any]] { self[key] as? [[String: Any]] ?? [] }
    func string(_ key: String) -> String? { self[key] as? String }
    func number(_ key: String) -> Double? { (self[key] as? NSNumber)?.doubleValue }
}
