import Dispatch
import Foundation

/// The signals of the commands that run to an end (`loadgen`, `import`); the servers stop through
/// swift-service-lifecycle.
enum Signals {
    /// Calls `action` with the signal on the first SIGINT or SIGTERM, after which both have their
    /// default effect again.
    static func onInterrupt(_ action: @escaping @Sendable (Int32) -> Void) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                signal(SIGINT, SIG_DFL)
                signal(SIGTERM, SIG_DFL)
                action(number)
            }
            source.resume()
            return source
        }
    }
}
