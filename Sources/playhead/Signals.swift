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
    static func onInterrupt(_ action: @escaping @Sendable (Int32) -> Void) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM, SIGHUP].map { number in
            trap(number) { _ in
                signal(SIGINT, SIG_DFL)
                signal(SIGTERM, SIG_DFL)
                signal(SIGHUP, SIG_DFL)
                action(number)
            }
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
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { handler(source) }
        source.resume()
        return source
    }

    /// Whether signal `number` has a handler (libdispatch's, once a source of it is registered),
    /// not its default effect or SIG_IGN.
    static func isHandled(_ number: Int32) -> Bool {
        var current = sigaction()
        guard sigaction(number, nil, &current) == 0 else { return false }
        let handler = unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self)
        return handler != unsafeBitCast(SIG_DFL, to: Int.self) && handler != unsafeBitCast(SIG_IGN, to: Int.self)
    }
}


/// SIGTERM, SIGINT and SIGHUP in a server (`serve`, `ingest`, `store`, `observe`), from its first
/// step to its end, through one set of dispatch sources:
/// - during its start-up (the lake's preflight, up to 10 s against an S3 store that does not
///   answer; the log's recovery; a broker's metadata), before its service group runs, the process
///   ends with a line that says so and the status 128 + the signal. Nothing is acknowledged or read
///   yet, and what the log's recovery was doing is redone at the next start, as after `kill -9`.
///   (Until 2026-12-07 the signal had its default effect there: exit 143 with nothing logged.)
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
        for _ in 0..<1000 where ![SIGINT, SIGTERM, SIGHUP].allSatisfy(Signals.isHandled) {
            try? await Task.sleep(for: .milliseconds(1))
        }
        return signals
    }

    private init(command: String, logger: Logger, json: Bool) {
        sources = [SIGINT, SIGTERM, SIGHUP].map { number in
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
                        "\(command) stopped by \(Signals.name(number)) during start-up, before it took requests or read the log; nothing was acknowledged"
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

    private static func exit(_ number: Int32, logger: Logger, level: Logger.Level, _ message: Logger.Message) -> Never {
        let status = 128 + number
        logger.log(level: level, message, metadata: ["signal": "\(Signals.name(number))", "exit_code": "\(status)"])
        fflush(nil)  // every output stream: the line above
        _exit(status)
    }
}
