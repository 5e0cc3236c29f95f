// The baseline of scripts/bench-ingest: a bare SwiftNIO HTTP/1.1 server that reads each request
// body and answers 202 with a fixed small JSON body, validating and storing nothing. Playhead's
// single-event target is at least 0.75x this server's requests per second, measured in the same run.
//
//   bare-nio-server [port] [threads]
import NIOCore
import NIOHTTP1
import NIOPosix

final class AcceptEverything: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private var keepAlive = true
    private var bodyBytes = 0
    private let answer = ByteBuffer(string: #"{"accepted":1,"rejected":0,"errors":[]}"#)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            bodyBytes = 0
        case .body(let chunk):
            bodyBytes += chunk.readableBytes
        case .end:
            var headers: HTTPHeaders = ["Content-Type": "application/json", "Content-Length": String(answer.readableBytes)]
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .accepted, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(answer))), promise: nil)
            let keepAlive = self.keepAlive
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { loopBound.value.close(promise: nil) }
            }
        }
    }
}

let arguments = CommandLine.arguments
let port = arguments.count > 1 ? Int(arguments[1]) ?? 8090 : 8090
let threads = arguments.count > 2 ? Int(arguments[2]) ?? System.coreCount : System.coreCount
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let channel = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
    .childChannelOption(.maxMessagesPerRead, value: 16)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(AcceptEverything())
        }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
print("bare-nio-server listening on http://127.0.0.1:\(channel.localAddress?.port ?? port)")
try channel.closeFuture.wait()
