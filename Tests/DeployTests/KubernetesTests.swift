import Foundation
import PlayheadTestSupport
import Testing

/// deploy/kubernetes: the scale-out manifests and the single-node variant, parsed with PyYAML.
@Suite("Kubernetes manifests")
struct KubernetesTests {
    static let folders = ["deploy/kubernetes", "deploy/kubernetes/single-node"]

    struct Object {
        var file: String
        var body: [String: Any]
        var kind: String { body.string("kind") ?? "" }
        var name: String { body.dict("metadata")?.string("name") ?? "" }
    }

    static func objects(in folder: String) async throws -> (kustomization: [String: Any], objects: [Object]) {
        let files = try Deploy.files(in: folder, extensions: [".yaml", ".yml"])
        let documents = try await Deploy.yamlDocuments(files)
        var kustomization: [String: Any] = [:]
        var objects: [Object] = []
        for file in files {
            for case let document as [String: Any] in documents[file] ?? [] {
                if document.string("kind") == "Kustomization" { kustomization = document } else { objects.append(Object(file: file, body: document)) }
            }
        }
        return (kustomization, objects)
    }

    static func workloads(_ objects: [Object]) -> [Object] {
        objects.filter { ["Deployment", "StatefulSet"].contains($0.kind) }
    }

    static func podSpec(_ workload: Object) -> [String: Any] {
        workload.body.dict("spec")?.dict("template")?.dict("spec") ?? [:]
    }

    static func podLabels(_ workload: Object) -> [String: String] {
        workload.body.dict("spec")?.dict("template")?.dict("metadata")?["labels"] as? [String: String] ?? [:]
    }

    /// `--flag=value` and `--flag value` pairs of a container's args.
    static func flags(_ args: [String]) -> [(flag: String, value: String?)] {
        var result: [(flag: String, value: String?)] = []
        var index = 0
        while index < args.count {
            let arg = args[index]
            if arg.hasPrefix("--") {
                if let equals = arg.firstIndex(of: "=") {
                    result.append((String(arg[..<equals]), String(arg[arg.index(after: equals)...])))
                } else if index + 1 < args.count, !args[index + 1].hasPrefix("--") {
                    result.append((arg, args[index + 1]))
                    index += 1
                } else {
                    result.append((arg, nil))
                }
            }
            index += 1
        }
        return result
    }

    @Test("kustomization lists every manifest of its folder, and only those", arguments: KubernetesTests.folders)
    func kustomizationListsEveryFile(_ folder: String) async throws {
        let (kustomization, _) = try await Self.objects(in: folder)
        let resources = Set(kustomization["resources"] as? [String] ?? [])
        let files = Set(try Deploy.files(in: folder, extensions: [".yaml", ".yml"]).map { URL(fileURLWithPath: $0).lastPathComponent })
            .subtracting(["kustomization.yaml", "kustomization.yml"])
        #expect(!resources.isEmpty)
        #expect(resources == files, "\(folder): listed \(resources.sorted()), present \(files.sorted())")
    }

    @Test("kubectl kustomize builds each folder", arguments: KubernetesTests.folders)
    func kustomizeBuilds(_ folder: String) async throws {
        let kubectl = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let kubectl else {
            print("kubectl not installed: skipping the kustomize build of \(folder)")
            return
        }
        let result = try await runCommand(kubectl, ["kustomize", Deploy.path(folder)], timeout: .seconds(60))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("kind: Namespace"))
    }

    @Test("every workload has an image, resources, probes on /healthz and /readyz, and graceful termination", arguments: KubernetesTests.folders)
    func workloadsAreComplete(_ folder: String) async throws {
        let workloads = Self.workloads(try await Self.objects(in: folder).objects)
        #expect(!workloads.isEmpty)
        for workload in workloads {
            let spec = Self.podSpec(workload)
            let containers = spec.dicts("containers")
            #expect(!containers.isEmpty, "\(workload.name) has no containers")
            let grace = spec.number("terminationGracePeriodSeconds")
            #expect(grace != nil, "\(workload.name) has no terminationGracePeriodSeconds")
            // The selector selects the pod template.
            let selector = workload.body.dict("spec")?.dict("selector")?["matchLabels"] as? [String: String] ?? [:]
            #expect(!selector.isEmpty && selector.allSatisfy { Self.podLabels(workload)[$0.key] == $0.value }, "\(workload.name) selector")
            for container in containers {
                let where_ = "\(workload.name)/\(container.string("name") ?? "?")"
                let image = container.string("image") ?? ""
                #expect(!image.isEmpty && !image.hasSuffix(":latest") && image.contains(":"), "\(where_) image \(image)")
                let requests = container.dict("resources")?.dict("requests")
                #expect(requests?["cpu"] != nil && requests?["memory"] != nil, "\(where_) resource requests")
                #expect(container.dict("resources")?.dict("limits")?["memory"] != nil, "\(where_) memory limit")
                #expect(container.dict("readinessProbe")?.dict("httpGet")?.string("path") == "/readyz", "\(where_) readiness probe")
                #expect(container.dict("livenessProbe")?.dict("httpGet")?.string("path") == "/healthz", "\(where_) liveness probe")
                let portNames = container.dicts("ports").compactMap { $0.string("name") }
                for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                    guard let port = container.dict(probe)?.dict("httpGet")?["port"] else { continue }
                    if let name = port as? String { #expect(portNames.contains(name), "\(where_) \(probe) port \(name)") }
                }
                #expect(container.dicts("ports").contains { $0.number("containerPort") == 8080 }, "\(where_) exposes no :8080")
                // Graceful: the grace period outlasts the preStop sleep plus --shutdown-grace, plus
                // the lake writer's last writes (at most 20 s: docs/lake.md) where there is one.
                let preStop = container.dict("lifecycle")?.dict("preStop")
                #expect(preStop != nil, "\(where_) has no preStop hook")
                let sleep = preStop?.dict("sleep")?.number("seconds") ?? 0
                let args = container["args"] as? [String] ?? []
                // Without the flag, the binary's default (30 s, `--help`): it was taken as 0, so
                // observe's 30 s grace passed against preStop 2 s + 30 s (a review).
                let shutdownGrace = Self.flags(args).first { $0.flag == "--shutdown-grace" }?.value.flatMap { Double($0) } ?? 30
                let lakeWrites: Double = ["serve", "store"].contains(args.first ?? "") ? 20 : 0
                if let grace {
                    #expect(grace > sleep + shutdownGrace + lakeWrites, "\(where_): grace \(grace) <= preStop \(sleep) + shutdown \(shutdownGrace) + lake \(lakeWrites)")
                }
            }
        }
    }

    @Test("every container runs a real playhead subcommand with flags that subcommand has", arguments: KubernetesTests.folders)
    func argsAreRealFlags(_ folder: String) async throws {
        let cli = try Deploy.cliFlags()
        #expect(cli.commands["serve"]?.contains("--data-dir") == true, "could not read the CLI's flags: \(cli.commands.keys.sorted())")
        let expectedCommands: Set<String> = folder.hasSuffix("single-node") ? ["serve"] : ["ingest", "store", "observe"]
        var seenCommands = Set<String>()
        for workload in Self.workloads(try await Self.objects(in: folder).objects) {
            for container in Self.podSpec(workload).dicts("containers") {
                let args = container["args"] as? [String] ?? []
                let command = args.first ?? ""
                seenCommands.insert(command)
                // A subcommand the CLI does not have yet (store, observe are written in parallel) is held
                // to the flags of the shared option groups; once it exists, to its own.
                let allowed = cli.commands[command] ?? cli.shared
                if cli.commands[command] == nil { print("note: `playhead \(command)` is not in Sources/playhead yet; checking its flags against the shared option groups") }
                for (flag, value) in Self.flags(Array(args.dropFirst())) {
                    #expect(allowed.contains(flag), "\(workload.name): `playhead \(command)` has no flag \(flag)")
                    if ["--port", "--flush-events", "--flush-bytes", "--threads", "--max-body-bytes", "--max-events-per-request",
                        "--log-min-free-bytes"].contains(flag) {
                        #expect(value.flatMap { Int($0) } != nil, "\(workload.name): \(flag)=\(value ?? "") is not an integer")
                    }
                    if ["--shutdown-grace", "--flush-interval"].contains(flag) {
                        #expect(value.flatMap { Double($0) } != nil, "\(workload.name): \(flag)=\(value ?? "") is not a number")
                    }
                    if flag == "--log", let value, !value.hasPrefix("$(") {
                        #expect(value.hasPrefix("kafka://") || value.hasPrefix("file:"), "\(workload.name): --log \(value)")
                    }
                }
                // Listening on every interface, or the probes and the Service cannot reach it.
                #expect(Self.flags(args).contains { $0.flag == "--host" && $0.value == "0.0.0.0" }, "\(workload.name) listens on loopback")
            }
        }
        #expect(seenCommands == expectedCommands, "\(folder) runs \(seenCommands.sorted())")
    }

    @Test("the scale-out variant reads Kafka and the lake from the ConfigMap, and every $(VAR) is defined")
    func configMapWiring() async throws {
        let objects = try await Self.objects(in: "deploy/kubernetes").objects
        let configMaps = objects.filter { $0.kind == "ConfigMap" }
        #expect(configMaps.count == 1)
        let data = configMaps.first?.body["data"] as? [String: String] ?? [:]
        #expect(!(data["KAFKA_BOOTSTRAP"] ?? "").isEmpty, "no KAFKA_BOOTSTRAP in the ConfigMap")
        #expect(!(data["KAFKA_TOPIC"] ?? "").isEmpty)
        let configMapName = configMaps.first?.name ?? ""
        for workload in Self.workloads(objects) {
            for container in Self.podSpec(workload).dicts("containers") {
                var defined = Set<String>()
                for env in container.dicts("env") {
                    if let name = env.string("name") { defined.insert(name) }
                    if let reference = env.dict("valueFrom")?.dict("configMapKeyRef") {
                        #expect(reference.string("name") == configMapName)
                        #expect(data[reference.string("key") ?? ""] != nil, "\(workload.name): ConfigMap has no key \(reference.string("key") ?? "")")
                    }
                }
                for source in container.dicts("envFrom") {
                    if source.dict("configMapRef")?.string("name") == configMapName { defined.formUnion(data.keys) }
                }
                let args = (container["args"] as? [String] ?? []).joined(separator: " ")
                for match in args.matches(of: try Regex(#"\$\(([A-Za-z_][A-Za-z0-9_]*)\)"#)) {
                    let variable = String(match.output[1].substring ?? "")
                    #expect(defined.contains(variable), "\(workload.name): $(\(variable)) is not defined")
                }
                #expect(args.contains("--log=kafka://$(KAFKA_BOOTSTRAP)/"), "\(workload.name) does not use Kafka from the ConfigMap")
            }
        }
    }

    @Test("ingest scales on CPU and keeps pods through disruptions; Services select workloads")
    func autoscalingAndServices() async throws {
        for folder in Self.folders {
            let objects = try await Self.objects(in: folder).objects
            let workloads = Self.workloads(objects)
            for service in objects where service.kind == "Service" {
                let selector = service.body.dict("spec")?["selector"] as? [String: String] ?? [:]
                let targets = workloads.filter { workload in selector.allSatisfy { Self.podLabels(workload)[$0.key] == $0.value } }
                #expect(!selector.isEmpty && !targets.isEmpty, "Service \(service.name) selects no workload")
                let portNames = Set(targets.flatMap { Self.podSpec($0).dicts("containers").flatMap { $0.dicts("ports") } }.compactMap { $0.string("name") })
                for port in service.body.dict("spec")?.dicts("ports") ?? [] {
                    if let name = port["targetPort"] as? String { #expect(portNames.contains(name), "Service \(service.name) targetPort \(name)") }
                }
            }
            for budget in objects where budget.kind == "PodDisruptionBudget" {
                let selector = budget.body.dict("spec")?.dict("selector")?["matchLabels"] as? [String: String] ?? [:]
                #expect(workloads.contains { w in selector.allSatisfy { Self.podLabels(w)[$0.key] == $0.value } }, "PDB \(budget.name) selects nothing")
            }
        }
        let objects = try await Self.objects(in: "deploy/kubernetes").objects
        let hpa = objects.first { $0.kind == "HorizontalPodAutoscaler" }
        #expect(hpa?.body.string("apiVersion") == "autoscaling/v2")
        let target = hpa?.body.dict("spec")?.dict("scaleTargetRef")
        #expect(target?.string("kind") == "Deployment" && target?.string("name") == "playhead-ingest")
        let metrics = hpa?.body.dict("spec")?.dicts("metrics") ?? []
        #expect(metrics.contains { $0.dict("resource")?.string("name") == "cpu" }, "the HPA does not scale on CPU")
        #expect((hpa?.body.dict("spec")?.number("minReplicas") ?? 0) >= 2)
        #expect(objects.contains { $0.kind == "PodDisruptionBudget" && $0.name == "playhead-ingest" })
        let ingest = objects.first { $0.kind == "Deployment" && $0.name == "playhead-ingest" }
        let ingestContainer = ingest.map { Self.podSpec($0).dicts("containers") }?.first
        #expect(ingestContainer?.dict("resources")?.dict("requests")?["cpu"] != nil, "an HPA on CPU needs a CPU request")
    }

    @Test("the workloads that take events from the internet (ingest, serve) read write keys from a Secret mounted where --write-key-file points, not readable by every user (a security review found them open to anyone)")
    func writeKeysFromASecret() async throws {
        for folder in Self.folders {
            let objects = try await Self.objects(in: folder).objects
            for workload in Self.workloads(objects) {
                let spec = Self.podSpec(workload)
                guard let container = spec.dicts("containers").first, let args = container["args"] as? [String],
                    ["ingest", "serve"].contains(args.first ?? "")
                else { continue }
                let file = Self.flags(args).first { $0.flag == "--write-key-file" }?.value
                #expect(file != nil, "\(workload.name) takes events without write keys")
                guard let file else { continue }
                let folderOfFile = (file as NSString).deletingLastPathComponent
                let mount = container.dicts("volumeMounts").first { $0.string("mountPath") == folderOfFile }
                let volume = spec.dicts("volumes").first { $0.string("name") == mount?.string("name") }
                let secret = volume?.dict("secret")
                #expect(secret?.string("secretName") == "playhead-write-keys", "\(workload.name): \(file) is not on the Secret's volume")
                #expect(Int(secret?.number("defaultMode") ?? 0o644) & 0o004 == 0, "\(workload.name): the key file is readable by every user")
            }
        }
    }

    @Test("the single-node StatefulSet keeps --data-dir on a persistent volume")
    func singleNodeVolume() async throws {
        let objects = try await Self.objects(in: "deploy/kubernetes/single-node").objects
        let sets = objects.filter { $0.kind == "StatefulSet" }
        #expect(sets.count == 1)
        guard let serve = sets.first else { return }
        #expect(serve.body.dict("spec")?.number("replicas") == 1)
        let claims = serve.body.dict("spec")?.dicts("volumeClaimTemplates").compactMap { $0.dict("metadata")?.string("name") } ?? []
        let container = Self.podSpec(serve).dicts("containers").first ?? [:]
        let dataDir = Self.flags(container["args"] as? [String] ?? []).first { $0.flag == "--data-dir" }?.value
        #expect(dataDir != nil, "serve has no --data-dir")
        let mount = container.dicts("volumeMounts").first { $0.string("mountPath") == dataDir }
        #expect(mount != nil && claims.contains(mount?.string("name") ?? ""), "--data-dir \(dataDir ?? "") is not on a volume claim \(claims)")
        let governing = serve.body.dict("spec")?.string("serviceName")
        #expect(objects.contains { $0.kind == "Service" && $0.name == governing && $0.body.dict("spec")?.string("clusterIP") == "None" })
    }

    @Test("the flag reader finds options, option groups and custom names")
    func flagReader() {
        let source = """
            struct A: ParsableArguments {
                @Option(name: .long, help: "x") var dataDir: String = "."
                @Flag(name: .long) var json = false
                @Option(name: .customLong("s3-endpoint")) var endpoint: String?
            }
            struct C: AsyncParsableCommand {
                static let configuration = CommandConfiguration(commandName: "store", abstract: "s")
                @OptionGroup(title: "Storage") var storage: A
                @Option(name: .long, help: "Seconds (default 10).") var flushInterval: Double = 10
            }
            """
        let parsed = Deploy.parseCLIFlags(source)
        #expect(parsed.commands["store"] == ["--data-dir", "--json", "--s3-endpoint", "--flush-interval"])
        #expect(parsed.shared == ["--data-dir", "--json", "--s3-endpoint"])
        #expect(Deploy.kebab("logMinFreeBytes") == "log-min-free-bytes")
    }
}
