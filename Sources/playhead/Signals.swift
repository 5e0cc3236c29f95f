import Dispatch
import Foundation
import Synchronization

/// The signals of the commands that run to an end (`loadgen`, `import`); the servers stop through
/// swift-service-lifecycle, and ``onSecond(_:_:)`` ends them at a second signal.
enum Signals {
    /// Calls `action` with the signal when any of `signals` arrives for the second time (counted
    /// together: SIGTERM then SIGINT is a second signal), beside swift-service-lifecycle, which
    /// takes the first for a graceful stop and traps the rest. Cancel the sources to stop counting.
    static func onSecond(_ signals: [Int32], _ action: @escaping @Sendable (Int32) -> Void) -> [any DispatchSourceSignal] {
        let received = Mutex(0)
        return signals.map { number in
            trap(number) { source in
                // Signals that arrive close together are delivered as one event: `data` counts them.
                let count = Int(source.data)
                if received.withLock({ total in total += count; return total >= 2 }) { action(number) }
            }
        }
    }

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

    /// Takes signal `number` from its default effect and calls `handler` with the source each time
    /// it arrives, on a global queue.
    private static func trap(_ number: Int32, _ handler: @escaping @Sendable (any DispatchSourceSignal) -> Void) -> any DispatchSourceSignal {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { handler(source) }
        source.resume()
        return source
    }
}
