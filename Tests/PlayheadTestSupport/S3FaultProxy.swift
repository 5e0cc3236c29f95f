import Foundation

/// An HTTP proxy in front of a real S3 gateway (SeaweedFS) that forwards every request, except
/// those its `intercept` answers itself: a store that behaves otherwise than the gateway (a lost
/// answer, a status it never sends) for one kind of request, and is the real one for the rest.
///
/// `intercept` is the body of a Python function `intercept(handler, body, upstream)`, where
/// `handler` is the request's `BaseHTTPRequestHandler` (`command`, `path`, `headers`), `body` its
/// bytes and `upstream` an `http.client.HTTPConnection` to the gateway. It returns `None` to forward
/// the request, `(status, bytes)` to answer it so, or `'close'` to forward it and close the
/// connection without answering (an answer lost on the way back). It may keep state in globals.
public struct S3FaultProxy {
    public let process: ChildProcess
    public let port: Int
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    public static func start(before gateway: SeaweedFS, name: String, intercept: String) async throws -> S3FaultProxy {
        let port = try TestNetwork.freePort()
        let indented = intercept.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
        let script = """
            import http.client, http.server, sys
            port, target = int(sys.argv[1]), int(sys.argv[2])
            def intercept(handler, body, upstream):
            \(indented)
                return None
            class Proxy(http.server.BaseHTTPRequestHandler):
                protocol_version = 'HTTP/1.1'
                def forward(self):
                    body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                    upstream = http.client.HTTPConnection('127.0.0.1', target)
                    answer = intercept(self, body, upstream)
                    if isinstance(answer, tuple):
                        self.send_response(answer[0])
                        self.send_header('Content-Length', str(len(answer[1])))
                        self.end_headers()
                        self.wfile.write(answer[1])
                        return
                    upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                    response = upstream.getresponse()
                    data = response.read()
                    if answer == 'close':
                        self.close_connection = True
                        return
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in ('content-length', 'transfer-encoding', 'connection'):
                            self.send_header(name, value)
                    # A HEAD's length is the object's, not that of its (empty) body.
                    length = response.getheader('Content-Length') if self.command == 'HEAD' else str(len(data))
                    self.send_header('Content-Length', length or '0')
                    self.end_headers()
                    self.wfile.write(data)
                do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward
                def log_message(self, *args): pass
            server = http.server.ThreadingHTTPServer(('127.0.0.1', port), Proxy)
            print('Serving HTTP', flush=True)
            server.serve_forever()
            """
        let process = try ChildProcess(
            TestEnvironment.python, ["-u", "-c", script, "\(port)", "\(gateway.s3Port)"], name: name, logDirectory: TestEnvironment.artifactsDirectory)
        do {
            _ = try await process.waitForOutput(containing: "Serving HTTP", timeout: .seconds(20))
        } catch {
            process.kill9()
            throw error
        }
        return S3FaultProxy(process: process, port: port)
    }

    public func stop() { process.kill9() }
}
