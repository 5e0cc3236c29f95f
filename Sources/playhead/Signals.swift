import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The signals of the commands that run to an end (`loadgen`, `import`, `log dump --follow`); the
/// servers' are ``ServerSignals``.
enum Signals {
    /// `SIGTERM`, `SIGINT`, `SIGHUP`, or the number.
    static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        default: "signal \(number)"
        }
    }

    /// Calls `action` with the signal on the first SIGINT, SIGTERM or SIGHUP (a closed terminal),
    /// after which all three have their default effect again. SIGHUP killed an `import` at once,
    /// with part of its file left in the lake (an outside review: 1,319,408 of 2,000,000 events).
    /// Returns once the signals are taken from their default effect (``trapped(_:)``). Cancel the
    /// sources and call ``restoreDefaults()`` to give the signals back.
    static func onInterrupt(_ action: @escaping @Sendable (Int32) -> Void) async -> [any DispatchSourceSignal] {
        let sources = interrupts.map { number in
            trap(number) { _ in
                restoreDefaults()
                action(number)
            }
        }
        await trapped(interrupts)
        return sources
    }

    /// SIGINT, SIGTERM and SIGHUP, the signals that stop a command.
    static let interrupts = [SIGINT, SIGTERM, SIGHUP]

    /// Gives SIGINT, SIGTERM and SIGHUP their default effect again. (With their sources cancelled
    /// and libdispatch's handler left in place, they would be lost: SIGHUP was, after an `import`.)
    static func restoreDefaults() {
        for number in interrupts { signal(number, SIG_DFL) }
    }

    /// Waits until `signals` are taken from their default effect (at most a second; normally at
    /// once), so that one that comes later reaches its source: until libdispatch has installed
    /// its handler, a signal has its default effect and the process ends unlogged.
    static func trapped(_ signals: [Int32]) async {
        for _ in 0..<1000 where !signals.allSatisfy(isHandled) {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Calls `handler` with the source each time signal `number` arrives, on a global queue.
    ///
    /// The signal is not set to SIG_IGN first, as on systems where dispatch sources only watch:
    /// libdispatch on Linux takes the signal from its default effect itself, with a handler it
    /// installs when the signal's first source is registered (on its own thread, a moment after
    /// `resume()`; ``isHandled(_:)`` tells when). Until then the signal has its default effect (the
    /// process ends); with SIG_IGN first, it was lost in that moment, and a SIG_IGN set after the
    /// registration left the signal ignored for good (libdispatch installs its handler once).
    fileprivate static func trap(_ number: Int32, _ handler: @escaping @Sendable (any DispatchSourceSignal) -> Void) -> any DispatchSourceSignal {
        #if canImport(Darwin)
        signal(number, SIG_IGN)  // kqueue's signal sources only watch: the default effect must go
        #endif
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { handler(source) }
        source.resume()
        return source
    }

    /// Whether signal `number` has a handler (libdispatch's, once a source of it is registered),
    /// not its default effect or SIG_IGN.
    static func isHandled(_ number: Int32) -> Bool {
        #if canImport(Darwin)
        return true  // SIG_IGN, set by ``trap(_:_:)`` before the source
        #else
        var current = sigaction()
        guard sigaction(number, nil, &current) == 0 else { return false }
        let handler = unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self)
        return handler != unsafeBitCast(SIG_DFL, to: Int.self) && handler != unsafeBitCast(SIG_IGN, to: Int.self)
        #endif
    }
}

/// SIGTERM, SIGINT and SIGHUP in a server (`serve`, `ingest`, `store`, `observe`), from its first
/// step to its end, through one set of dispatch sources:
/// - during its start-up (the lake's preflight, up to 10 s against an S3 store that does not
///   answer; the log's recovery; a broker's metadata), before its service group runs, the process
///   says so in a line, then is killed by the signal. Nothing is acknowledged or read yet, and
///   what the log's recovery was doing is redone at the next start, as after `kill -9`. (Until
///   2026-12-07 the signal had its default effect there, with nothing logged.)
/// - then the first signal stops the service group gracefully;
/// - a second (Ctrl-C again, or a supervisor's second SIGTERM) ends the process at once, as
///   `kill -9` would: every acknowledged event is durable in the log, so nothing acknowledged is
///   lost. (Until 2026-12-06 further signals were ignored, and a stop waited out --shutdown-grace
///   for a stalled client whatever the operator did, a review.)
///
/// The service group does not trap the signals itself. libdispatch on Linux installs its signal
/// handler once per signal and process, when the signal's first source is registered (on its own
/// thread, a moment after `resume()`); swift-service-lifecycle sets the signal to SIG_IGN each time
/// it traps it, so a group that trapped after a source of ours was registered left the signal
/// ignored for good (found while adding the start-up stage: SIGTERM no longer stopped `serve`).
final class ServerSignals: @unchecked Sendable {  // `sources` is set once, in init
    private struct State {
        var group: ServiceGroup?
        var received = 0
    }
    private let state = Mutex(State())
    private var sources: [any DispatchSourceSignal] = []

    /// Traps the signals, and returns once libdispatch has taken them from their default effect
    /// (at most a second; normally at once): from then on, a signal during start-up is said.
    static func start(command: String, logger: Logger, json: Bool) async -> ServerSignals {
        let signals = ServerSignals(command: command, logger: logger, json: json)
        await Signals.trapped(Signals.interrupts)
        return signals
    }

    private init(command: String, logger: Logger, json: Bool) {
        sources = Signals.interrupts.map { number in
            Signals.trap(number) { [self] source in
                // Signals that arrive close together are delivered as one event: `data` counts them.
                let (group, received) = state.withLock { state in
                    state.received += Int(source.data)
                    return (state.group, state.received)
                }
                if let group {
                    if received >= 2 {
                        Self.exit(
                            number, logger: logger, level: .warning,
                            "a second signal: stopping at once, without waiting for requests in flight (their clients get no answer and send them again) or for the stages to finish; every acknowledged event is in the log, and what was read from it but not yet written to the lake is read again at the next start"
                        )
                    }
                    Task { await group.triggerGracefulShutdown() }
                } else {
                    // With --log-format json the last line says why the process ended, as every
                    // exit with a status other than 0 does (LoggingOptions.running).
                    Self.exit(
                        number, logger: logger, level: json ? .critical : .notice,
                        "\(command) stopped by \(Signals.name(number)) during start-up, before it took requests or read the log; nothing was acknowledged",
                        bySignal: true
                    )
                }
            }
        }
    }

    /// From here on, a signal stops `group` gracefully (also when it comes before the group runs:
    /// the group then starts its services and stops them at once).
    func stop(_ group: ServiceGroup) {
        state.withLock { $0.group = group }
    }

    /// Says `message` and ends the process: with status 128 + the signal, or, `bySignal`, killed by
    /// the signal itself, as it was before the line was said (a supervisor such as systemd takes a
    /// death by SIGTERM for a clean stop, and exit status 143 for a failure). A shell shows either
    /// as 128 + the signal.
    private static func exit(_ number: Int32, logger: Logger, level: Logger.Level, _ message: Logger.Message, bySignal: Bool = false) -> Never {
        let status = 128 + number
        logger.log(level: level, message, metadata: ["signal": "\(Signals.name(number))", "exit_code": .stringConvertible(status)])
        fflush(nil)  // every output stream: the line above
        if bySignal {
            // Raised on this thread, which dispatch's threads start with the signal blocked: let
            // through here, it ends the process before `raise` returns (sent to the process, it
            // waited on a thread that took it, and a SIGHUP did not arrive within a second).
            signal(number, SIG_DFL)
            var only = sigset_t()
            sigemptyset(&only)
            sigaddset(&only, number)
            pthread_sigmask(SIG_UNBLOCK, &only, nil)
            raise(number)
        }
        _exit(status)
    }
}
