public import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

extension HTTPServerBuilder {
    /// Hummingbird's HTTP/1 server with ``HTTP1Framing`` in its pipeline: HTTP/1.0 requests are
    /// answered in HTTP/1.0 and their connection closed, and a request the HTTP parser rejects gets
    /// a `400` that says why.
    /// - Parameter configuration: Hummingbird's HTTP/1 settings (the idle timeout).
    public static func dashboardHTTP1(configuration: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            DashboardHTTP1Channel(http1: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}

/// Hummingbird's ``HTTP1Channel`` with ``HTTP1Framing`` added between NIO's HTTP/1 decoder and the
/// conversion to version-less HTTP types (after which a request's version is gone).
struct DashboardHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let http1: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(HTTP1Framing(), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}

/// What Hummingbird 2's HTTP/1 channel leaves out of HTTP/1 framing, on one connection:
///
/// - An HTTP/1.0 request: Hummingbird sees no version (its request type has none), so it answered
///   `HTTP/1.1`, kept the connection open (HTTP/1.0 closes by default; only the idle timeout ended
///   it) and would chunk a body of unknown length, which an HTTP/1.0 client cannot read. Its answer
///   is now `HTTP/1.0` with `Connection: close` (also to a `Connection: keep-alive` one: a server may
///   always close), a streamed body ends with the connection, and the connection is closed once the
///   answer is written; later requests on it are not read. The close is a `FIN` first, then input
///   is read and dropped until the client's end (or ``lingerSeconds``): a full close with request
///   bytes still unread (a `413` to a body too large, sent before its end) makes the kernel send a
///   reset, and the client may get `ECONNRESET` before it reads the answer.
/// - A request NIO's parser rejects (a bad header, a bad `Content-Length`, headers too large):
///   Hummingbird answers `400` with an empty body and closes; the body now says what was wrong.
final class HTTP1Framing: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The versions of the requests read and not answered yet, oldest first.
    private var versions = CircularBuffer<HTTPVersion>()
    /// The version of the request being read (``versions`` may have lost it already: an answer
    /// written before the request's end pops it).
    private var currentVersion: HTTPVersion?
    /// The answer that ends the connection is written: input is dropped until its end.
    private var draining = false
    /// That answer is written out and its `FIN` sent.
    private var outputShut = false
    /// The client's end of input came before the `FIN` was sent.
    private var inputEnded = false
    /// The full close ``lingerSeconds`` after the `FIN`, when the client's end has not come by then.
    private var lingering: Scheduled<Void>?
    /// An HTTP/1.0 request was read: what follows it is not passed on.
    private var readingStopped = false
    /// The answer being written ends with the connection.
    private var closeAfterResponse = false
    /// Why the parser rejected the request, for the body of Hummingbird's `400`.
    private var parseError: HTTPParserError?
    /// The body of the `400` being written.
    private var rejection: ByteBuffer?

    /// Seconds the input is read (and dropped) after the `FIN` of an answer that ends the connection.
    static let lingerSeconds: Int64 = 2

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !readingStopped, !draining else { return }
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            versions.append(head.version)
            currentVersion = head.version
        case .end:
            readingStopped = currentVersion.map(Self.closesByDefault) ?? false
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Reading on, whatever the handlers after this one want: input left unread makes the close a reset.
        guard draining else { return context.fireChannelReadComplete() }
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event as? ChannelEvent == .inputClosed else { return context.fireUserInboundEventTriggered(event) }
        // Noted whenever it comes — also before the answer (a client that half-closes after its
        // request, `nc -N`) —, so that the close after the answer is a full one, with no linger.
        inputEnded = true
        guard draining else { return context.fireUserInboundEventTriggered(event) }
        // Not before the answer is out: a close drops what is still queued.
        if outputShut { context.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        lingering?.cancel()
        lingering = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // What follows an HTTP/1.0 request is dropped unanswered, bytes that do not parse included:
        // passed on, the error would get Hummingbird's 400 written after the answer that ends the
        // connection (into its body, or after its FIN).
        if readingStopped || draining, error is HTTPParserError || error is ByteToMessageDecoderError { return }
        if let error = error as? HTTPParserError { parseError = error }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200:
            let version = versions.popFirst() ?? .http1_1
            if Self.closesByDefault(version) {
                head.version = version
                head.headers.replaceOrAdd(name: "connection", value: "close")
                closeAfterResponse = true
            }
            if let parseError, head.status == .badRequest, head.headers["content-length"] == ["0"] {
                let text = "Bad request: " + Self.reason(parseError) + ".\n"
                head.headers.replaceOrAdd(name: "content-type", value: "text/plain; charset=utf-8")
                head.headers.replaceOrAdd(name: "content-length", value: String(text.utf8.count))
                head.headers.replaceOrAdd(name: "x-content-type-options", value: "nosniff")
                rejection = ByteBuffer(string: text)
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end(let trailers):
            if let body = rejection {
                rejection = nil
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            }
            guard closeAfterResponse else {
                context.write(data, promise: promise)
                return
            }
            // Closed once the answer is written out: a close now would drop what is still queued. A
            // FIN first; the full close at the client's end of input, or after lingerSeconds.
            draining = true
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.assumeIsolated().whenComplete { result in
                guard case .success = result, !self.inputEnded else { return context.close(promise: nil) }
                self.outputShut = true
                let shut = context.eventLoop.makePromise(of: Void.self)
                shut.futureResult.assumeIsolated().whenFailure { _ in context.close(promise: nil) }
                context.close(mode: .output, promise: shut)
                // NIO makes that a full close when the input is already shut: nothing to linger for.
                guard context.channel.isActive else { return }
                self.lingering = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(Self.lingerSeconds)) {
                    context.close(promise: nil)
                }
                context.read()
            }
            if let promise { written.futureResult.cascade(to: promise) }
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: written)
        default:
            context.write(data, promise: promise)
        }
    }

    /// HTTP/1.0 (and 0.9): no persistent connection unless negotiated, no chunked bodies.
    static func closesByDefault(_ version: HTTPVersion) -> Bool {
        version.major < 1 || (version.major == 1 && version.minor == 0)
    }

    /// What the parser found wrong, in words.
    static func reason(_ error: HTTPParserError) -> String {
        switch error {
        case .headerOverflow: "the request's header is too large"
        case .invalidContentLength, .unexpectedContentLength: "an invalid Content-Length"
        case .invalidChunkSize: "an invalid chunk size"
        case .invalidMethod: "an invalid method"
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
            "an invalid request target"
        case .invalidVersion: "an invalid HTTP version"
        case .invalidHeaderToken: "an invalid character in a header"
        case .invalidCharactersUsed: "invalid characters"
        case .lfExpected: "a line that does not end in CRLF"
        default: "not an HTTP/1 request (\(error))"
        }
    }
}
