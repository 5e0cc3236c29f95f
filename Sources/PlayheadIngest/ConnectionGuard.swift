import NIOCore

/// Sent outbound by the HTTP handler when a request has arrived whole.
struct RequestReceivedEvent: Sendable {}
/// Sent outbound by the HTTP handler when the response to a request has been written.
struct ResponseSentEvent: Sendable {}

/// Protects the server from slow and idle clients, before any HTTP parsing.
///
/// - A request must arrive whole within `requestTimeout` of its first byte. A client that trickles
///   bytes (slowloris) is disconnected when the deadline passes, whatever its pace.
/// - A connection with no request in progress is closed after `idleTimeout`.
final class ConnectionGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    private let requestTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var requestDeadline: Scheduled<Void>?
    private var idleDeadline: Scheduled<Void>?
    private var responsesPending = 0

    init(requestTimeout: Duration, idleTimeout: Duration) {
        self.requestTimeout = TimeAmount(requestTimeout)
        self.idleTimeout = TimeAmount(idleTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armIdle(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        armIdle(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        requestDeadline?.cancel()
        idleDeadline?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        idleDeadline?.cancel()
        idleDeadline = nil
        if requestDeadline == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            requestDeadline = context.eventLoop.scheduleTask(in: requestTimeout) {
                // The request did not arrive whole in time: drop the connection.
                loopBound.value.close(promise: nil)
            }
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        switch event {
        case is RequestReceivedEvent:
            requestDeadline?.cancel()
            requestDeadline = nil
            responsesPending += 1
            promise?.succeed()
        case is ResponseSentEvent:
            responsesPending -= 1
            if responsesPending == 0 && requestDeadline == nil { armIdle(context: context) }
            promise?.succeed()
        default:
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    private func armIdle(context: ChannelHandlerContext) {
        idleDeadline?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        idleDeadline = context.eventLoop.scheduleTask(in: idleTimeout) {
            loopBound.value.close(promise: nil)
        }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
