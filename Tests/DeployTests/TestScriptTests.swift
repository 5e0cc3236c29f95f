import Foundation
import PlayheadTestSupport
import Testing

/// What `scripts/test` does after `swift test` (scripts/testrun/after.py).
@Suite("scripts/test: after the tests")
struct TestScriptTests {
    @Test("processes left running with the run's mark are listed and stopped, by SIGKILL when they ignore SIGTERM; others are left alone")
    func leftovers() async throws {
        let mark = "test-\(UUID().uuidString)"
        let plain = try ChildProcess("/bin/sleep", ["300"], environment: ["PLAYHEAD_TEST_RUN": mark])
        let stubborn = try ChildProcess("/bin/sh", ["-c", "trap '' TERM; sleep 300 & wait"], environment: ["PLAYHEAD_TEST_RUN": mark])
        let unmarked = try ChildProcess("/bin/sleep", ["300"], environment: ["PLAYHEAD_TEST_RUN": mark + "-other"])
        defer { unmarked.kill9() }
        try await Task.sleep(for: .milliseconds(200))  // the shell has started its sleep

        let result = try await runCommand(
            TestEnvironment.python, [Deploy.path("scripts/testrun/after.py"), "leftovers", mark], timeout: .seconds(60))
        #expect(result.status == 0, "\(result.stderr)")
        // The shell, its sleep, and the plain sleep: three processes.
        #expect(result.stdout.hasPrefix("3 process(es) started by the tests still running"), "\(result.stdout)")
        #expect(result.stdout.contains("\(plain.pid): /bin/sleep 300"), "\(result.stdout)")
        #expect(result.stdout.contains("\(stubborn.pid): /bin/sh -c trap '' TERM; sleep 300 & wait"), "\(result.stdout)")
        #expect(!result.stdout.contains("\(unmarked.pid)"), "\(result.stdout)")
        #expect(await plain.waitForExit(timeout: .seconds(10)) != nil)
        #expect(await stubborn.waitForExit(timeout: .seconds(10)) != nil)
        #expect(unmarked.isRunning)

        // Nothing left: nothing said.
        let again = try await runCommand(TestEnvironment.python, [Deploy.path("scripts/testrun/after.py"), "leftovers", mark])
        #expect(again.status == 0 && again.stdout.isEmpty, "\(again.stdout)")
    }

    @Test("a test's child, and what the child started, are killed within seconds when the test process dies; the watch ends with the child")
    func parentWatch() async throws {
        // A stand-in for the test process, which this test cannot kill.
        let parent = try ChildProcess("/bin/sleep", ["300"])
        let child = try ChildProcess("/bin/sh", ["-c", "sleep 300 & echo grandchild $!; wait"], watchedParent: parent.pid)
        let line = try await child.waitForOutput(containing: "grandchild ", timeout: .seconds(20))
        let grandchild = try #require(line.split(separator: " ").last.flatMap { Int32($0) })
        // If the watch failed, `child`'s release would wait for ever: Foundation sees a child end
        // only when every process holding its end of a pipe has (the grandchild holds one).
        defer { kill(grandchild, SIGKILL) }
        try await Task.sleep(for: .milliseconds(2500))  // more than one round of the watch
        #expect(child.isRunning && Self.isAlive(grandchild), "stopped while its parent lives")
        #expect(await eventually(timeout: .seconds(5)) { ParentWatch.watchers(of: child.pid).count == 1 })

        parent.kill9()
        #expect(await child.waitForExit(timeout: .seconds(10)) != nil, "still running 10 s after its parent died")
        #expect(await eventually(timeout: .seconds(10)) { !Self.isAlive(grandchild) }, "the child's own child outlived it")
        #expect(await eventually(timeout: .seconds(5)) { ParentWatch.watchers(of: child.pid).isEmpty })

        // A child that ends while its parent lives takes its watcher with it.
        let short = try ChildProcess("/bin/sleep", ["300"])
        // The watcher's shell may not have started yet.
        #expect(await eventually(timeout: .seconds(5)) { ParentWatch.watchers(of: short.pid).count == 1 })
        short.kill9()
        #expect(await eventually(timeout: .seconds(5)) { ParentWatch.watchers(of: short.pid).isEmpty })
    }

    @Test("a file system a test mounted is unmounted within seconds when the test process dies; the watch ends with the unmount")
    func mountWatch() async throws {
        let directory = try TemporaryDirectory(prefix: "mount-watch")
        defer { withExtendedLifetime(directory) {} }
        let parent = try ChildProcess("/bin/sleep", ["300"])
        guard let mountPoint = try await mountTmpfs(in: directory, options: "size=1m", for: "mountWatch", watchedParent: parent.pid)
        else { return }
        defer { _ = try? runUnmount(mountPoint) }  // if the watch failed
        try await Task.sleep(for: .milliseconds(2500))
        #expect(Self.isMounted(mountPoint), "unmounted while its parent lives")
        #expect(ParentWatch.watchers(ofMount: mountPoint).count == 1)
        parent.kill9()
        #expect(await eventually(timeout: .seconds(10)) { !Self.isMounted(mountPoint) }, "still mounted 10 s after its parent died")

        // Unmounted by the test while its parent lives: the watch ends.
        let other = try TemporaryDirectory(prefix: "mount-watch")
        defer { withExtendedLifetime(other) {} }
        let second = try #require(try await mountTmpfs(in: other, options: "size=1m", for: "mountWatch"))
        try runUnmount(second)
        #expect(await eventually(timeout: .seconds(5)) { ParentWatch.watchers(ofMount: second).isEmpty })
    }

    static func isMounted(_ path: String) -> Bool {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first.map(String.init) == path }
    }

    /// Running, not a zombie (a zombie's parent has not collected it yet).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    @Test("the tests in flight of a test process that died: started and neither passed nor failed, also from lines run into each other")
    func inFlight() async throws {
        let directory = try TemporaryDirectory(prefix: "after")
        defer { withExtendedLifetime(directory) {} }  // removed on deinit: keep it until the test ends
        let log = directory.appending("swift-test.log")
        try """
            ◇ Test run started.
            ◇ Suite "A" started.
            ◇ Test "one" started.
            ◇ Test "two" started.
            ◇ Test three() started.◇ Test "four" started.
            ◇ Test "five" started.
            ◇ Test case passing 1 argument x → 1 to "five" started.
            ✔ Test "one" passed after 0.1 seconds.
            ✘ Test three() failed after 0.2 seconds with 1 issue.
            ✔ Test "five" with 2 test cases passed after 0.3 seconds.
            error: Process 'PlayheadPackageTests.xctest' exited with unexpected signal code 11

            """.write(to: log, atomically: true, encoding: .utf8)
        let result = try await runCommand(TestEnvironment.python, [Deploy.path("scripts/testrun/after.py"), "in-flight", log.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "  \"two\"\n  \"four\"\n", "\(result.stdout)")
    }
}
