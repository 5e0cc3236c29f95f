// The fuzzer's driver (`scripts/fuzz`). Built only with PLAYHEAD_FUZZ=1 and
// `-sanitize=fuzzer,address`. PLAYHEAD_FUZZ_TARGET names the check (FuzzChecks.targets); an input
// with a problem stops the run and libFuzzer saves it as `crash-…`.
import CFuzzer
import FuzzChecks
#if canImport(Glibc)
import Glibc
#endif

@main
enum Driver {
    static func main() {
        let name = getenv("PLAYHEAD_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        guard FuzzChecks.targets[name] != nil else {
            printError("PLAYHEAD_FUZZ_TARGET must be one of \(FuzzChecks.targets.keys.sorted()); it is \"\(name)\"")
            exit(2)
        }
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, count in
            let name = getenv("PLAYHEAD_FUZZ_TARGET").map { String(cString: $0) } ?? ""
            let problems = FuzzChecks.targets[name]!(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : count))
            if !problems.isEmpty {
                for problem in problems.prefix(10) { printError("PROBLEM: \(problem)") }
                abort()
            }
            return 0
        })
    }
}

func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
