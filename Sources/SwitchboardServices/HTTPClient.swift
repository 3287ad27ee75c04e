// SPDX-License-Identifier: Apache-2.0
internal import CCurl
import Synchronization
import SwitchboardWire

/// One HTTP request for ``HTTPClient``.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// Header lines; values are sent as given and never logged.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The whole exchange, connection to last byte (ms).
    public var timeout: Int
    /// Connecting, TLS included (ms).
    public var connectTimeout: Int
    /// No byte received for this long aborts the transfer (ms, rounded up to whole seconds; 0: no limit).
    /// It counts the wait for the first byte too.
    public var stallTimeout: Int

    public init(method: String = "POST", url: String, headers: [(name: String, value: String)] = [],
                body: [UInt8] = [], timeout: Int = 120_000, connectTimeout: Int = 10_000, stallTimeout: Int = 30_000) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
    }
}

/// The status line and headers of a response.
public struct HTTPResponseHead: Sendable {
    public var status: Int
    /// Header names in lower case; a repeated header keeps its last value.
    public var headers: [String: String]
}

/// What a response delivers, in order: its head once, then body bytes as they arrive.
public enum HTTPResponsePart: Sendable {
    case head(HTTPResponseHead)
    case body([UInt8])
}

/// A transfer that failed below HTTP: no connection, a timeout, a cut, a cancelled request.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        /// The server could not be resolved or reached.
        public static let connect = Code(name: "connect")
        /// The exchange took longer than its timeout, or stalled.
        public static let timeout = Code(name: "timeout")
        /// The connection broke or the response ended early.
        public static let transfer = Code(name: "transfer")
        /// The response exceeded the client's size limit.
        public static let tooLarge = Code(name: "too_large")
        /// The transfer cannot succeed as asked: a malformed URL, an unsupported scheme, a peer
        /// certificate that does not verify. Not worth another attempt.
        public static let refused = Code(name: "refused")
        /// The caller stopped reading, or the client shut down.
        public static let cancelled = Code(name: "cancelled")
        public var description: String { name }
    }

    public var code: Code
    public var message: String
    /// libcurl's code, 0 when the failure is the client's own.
    public var curlCode: Int

    public var description: String { "\(code): \(message)" }

    /// Failures worth another attempt: the request may not have reached the server, or it broke.
    public var isRetryable: Bool { code == .connect || code == .timeout || code == .transfer }
}

/// An HTTP/1.1 and HTTP/2 client over libcurl's multi interface.
///
/// One thread owns the multi handle and every transfer, so curl never runs on Swift's cooperative
/// pool; connections are cached by the multi handle and reused across requests. TLS peers and host
/// names are always verified.
///
/// > Important: call ``shutdown()`` when done; transfers still running then fail with ``HTTPClientError/Code/cancelled``.
public final class HTTPClient: Sendable {
    /// Bytes one response may hold at most.
    public let maximumResponseSize: Int
    private let shared: SharedQueue
    private let multi: MultiHandle

    public init(maximumResponseSize: Int = 16 << 20) {
        _ = Self.globalInit
        self.maximumResponseSize = maximumResponseSize
        let multi = MultiHandle()
        let shared = SharedQueue()
        self.multi = multi
        self.shared = shared
        DetachedThread { Self.loop(multi: multi, shared: shared) }.start()
    }

    deinit {
        shutdown()
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// Sends `request`; the stream yields its head, then its body, and ends when the response does.
    /// Ending the stream early (dropping it, cancelling the task) aborts the transfer.
    public func execute(_ request: HTTPRequest) -> AsyncThrowingStream<HTTPResponsePart, any Error> {
        let (stream, continuation) = AsyncThrowingStream<HTTPResponsePart, any Error>.makeStream()
        let accepted = shared.state.withLock { shared -> Int? in
            guard !shared.stopping else { return nil }
            shared.nextID += 1
            shared.added.append(Transfer(id: shared.nextID, request: request, continuation: continuation,
                                         limit: maximumResponseSize))
            return shared.nextID
        }
        guard let id = accepted else {
            continuation.finish(throwing: HTTPClientError(code: .cancelled, message: "the HTTP client has shut down",
                                                          curlCode: 0))
            return stream
        }
        continuation.onTermination = { [shared, multi] termination in
            guard case .cancelled = termination else { return }
            shared.state.withLock { $0.cancelled.append(id) }
            multi.wake()
        }
        multi.wake()
        return stream
    }

    /// Sends `request` and collects the whole response.
    public func send(_ request: HTTPRequest) async throws -> (head: HTTPResponseHead, body: [UInt8]) {
        var head = HTTPResponseHead(status: 0, headers: [:])
        var body: [UInt8] = []
        for try await part in execute(request) {
            switch part {
            case .head(let value): head = value
            case .body(let bytes): body += bytes
            }
        }
        // A cancelled reader sees the stream end early: that is not a complete response.
        try Task.checkCancellation()
        return (head, body)
    }

    /// Stops the client's thread; transfers under way fail.
    public func shutdown() {
        shared.state.withLock { $0.stopping = true }
        multi.wake()
    }

    private static func loop(multi: MultiHandle, shared: SharedQueue) {
        var active: [UnsafeMutableRawPointer: Transfer] = [:]
        var byID: [Int: Transfer] = [:]
        while true {
            let (added, cancelled, stopping) = shared.state.withLock { shared in
                defer {
                    shared.added.removeAll()
                    shared.cancelled.removeAll()
                }
                return (shared.added, shared.cancelled, shared.stopping)
            }
            for transfer in added {
                guard let easy = transfer.start() else { continue }
                curl_multi_add_handle(multi.handle, easy)
                active[easy] = transfer
                byID[transfer.id] = transfer
            }
            for id in cancelled {
                guard let transfer = byID.removeValue(forKey: id), let easy = transfer.easy else { continue }
                curl_multi_remove_handle(multi.handle, easy)
                active[easy] = nil
                transfer.finish(HTTPClientError.Code.cancelled, message: "the request was cancelled", curlCode: 0)
            }
            if stopping {
                for (easy, transfer) in active {
                    curl_multi_remove_handle(multi.handle, easy)
                    transfer.finish(.cancelled, message: "the HTTP client has shut down", curlCode: 0)
                }
                multi.close()
                return
            }
            var running: Int32 = 0
            curl_multi_perform(multi.handle, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi.handle, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                      let transfer = active.removeValue(forKey: easy)
                else { continue }
                let result = sb_curl_msg_result(message)
                curl_multi_remove_handle(multi.handle, easy)
                byID[transfer.id] = nil
                transfer.complete(result)
            }
            curl_multi_poll(multi.handle, nil, 0, 1000, nil)
        }
    }
}

/// Requests handed to the client's thread, and cancellations.
private final class SharedQueue: Sendable {
    struct State {
        var nextID = 0
        var added: [Transfer] = []
        var cancelled: [Int] = []
        var stopping = false
    }

    let state = Mutex(State())
}

/// The multi handle: created with the client, freed by its thread when it stops.
/// `@unchecked Sendable`: only the client's thread drives it; `curl_multi_wakeup` is documented as
/// callable from any thread.
private final class MultiHandle: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let closed = Mutex(false)

    init() {
        guard let handle = curl_multi_init() else { preconditionFailure("curl_multi_init failed") }
        self.handle = handle
        sb_curl_multi_setopt_long(handle, CURLMOPT_MAXCONNECTS, 32)
    }

    func wake() {
        closed.withLock { closed in
            if !closed { curl_multi_wakeup(handle) }
        }
    }

    func close() {
        closed.withLock { closed in
            closed = true
            curl_multi_cleanup(handle)
        }
    }
}

/// One request in flight, owned by the client's thread.
private final class Transfer {
    let id: Int
    let request: HTTPRequest
    let continuation: AsyncThrowingStream<HTTPResponsePart, any Error>.Continuation
    let limit: Int
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// curl writes failure details here; it must stay put while the handle lives.
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    private var status = 0
    private var headers: [String: String] = [:]
    private var headSent = false
    private var received = 0
    private var overflow = false

    init(id: Int, request: HTTPRequest, continuation: AsyncThrowingStream<HTTPResponsePart, any Error>.Continuation,
         limit: Int) {
        self.id = id
        self.request = request
        self.continuation = continuation
        self.limit = limit
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        if let easy { curl_easy_cleanup(easy) }
        if let headerList { curl_slist_free_all(headerList) }
        errorBuffer.deallocate()
    }

    /// Makes the easy handle; nil (and the stream failed) when curl refuses an option.
    func start() -> UnsafeMutableRawPointer? {
        guard let easy = curl_easy_init() else {
            finish(.transfer, message: "curl_easy_init failed", curlCode: 0)
            return nil
        }
        self.easy = easy
        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        // A body without "Expect: 100-continue" goes at once instead of after a round trip.
        headerList = curl_slist_append(headerList, "Expect:")
        let context = Unmanaged.passUnretained(self).toOpaque()
        let stall = max(0, (request.stallTimeout + 999) / 1000)
        var codes = [
            sb_curl_easy_setopt_string(easy, CURLOPT_URL, request.url),
            sb_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1),
            sb_curl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method),
            sb_curl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList),
            sb_curl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1),
            sb_curl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2),
            sb_curl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0),
            sb_curl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1),
            sb_curl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeout),
            sb_curl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, request.timeout),
            sb_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, stall > 0 ? 1 : 0),
            sb_curl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, stall),
            // Through an HTTPS proxy, the proxy's own "200 Connection established" is not the answer.
            sb_curl_easy_setopt_long(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1),
            sb_curl_easy_setopt_write_function(easy, CURLOPT_WRITEFUNCTION, onBody),
            sb_curl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context),
            sb_curl_easy_setopt_write_function(easy, CURLOPT_HEADERFUNCTION, onHeader),
            sb_curl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context),
        ]
        codes.append(sb_curl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer))
        if !request.body.isEmpty || request.method == "POST" {
            // The size first: COPYPOSTFIELDS then copies that many bytes instead of a C string.
            codes.append(sb_curl_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, request.body.count))
            codes.append(request.body.withUnsafeBytes {
                sb_curl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress))
            })
        }
        if let failed = codes.first(where: { $0 != CURLE_OK }) {
            finish(.transfer, message: "libcurl rejected an option: \(String(cString: curl_easy_strerror(failed)))",
                   curlCode: Int(failed.rawValue))
            return nil
        }
        return easy
    }

    fileprivate func header(_ line: UnsafeRawBufferPointer) -> Int {
        var end = line.count
        while end > 0, line[end - 1] == 10 || line[end - 1] == 13 { end -= 1 }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<end]), as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            let parts = text.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            headers = [:]
        } else if text.isEmpty {
            if status >= 200 { sendHead() }
        } else if let colon = text.firstIndex(of: ":") {
            let name = text[..<colon].lowercased()
            headers[name] = text[text.index(after: colon)...].trimmingCharacters()
        }
        return line.count
    }

    fileprivate func body(_ bytes: UnsafeRawBufferPointer) -> Int {
        sendHead()
        received += bytes.count
        guard received <= limit else {
            overflow = true
            return 0  // curl aborts the transfer with CURLE_WRITE_ERROR
        }
        continuation.yield(.body(Array(bytes)))
        return bytes.count
    }

    private func sendHead() {
        guard !headSent else { return }
        headSent = true
        continuation.yield(.head(HTTPResponseHead(status: status, headers: headers)))
    }

    func complete(_ result: CURLcode) {
        if overflow {
            return finish(.tooLarge, message: "the response exceeded \(limit) bytes", curlCode: Int(result.rawValue))
        }
        guard result == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail
            let code: HTTPClientError.Code = switch result {
            case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT: .connect
            case CURLE_OPERATION_TIMEDOUT: .timeout
            case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_PEER_FAILED_VERIFICATION,
                 CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM: .refused
            default: .transfer
            }
            return finish(code, message: message, curlCode: Int(result.rawValue))
        }
        sendHead()
        continuation.finish()
    }

    func finish(_ code: HTTPClientError.Code, message: String, curlCode: Int) {
        continuation.finish(throwing: HTTPClientError(code: code, message: message, curlCode: curlCode))
    }
}

private let onBody: curl_write_callback = { data, size, count, context in
    guard let context, let data else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    return transfer.body(UnsafeRawBufferPointer(start: data, count: size * count))
}

private let onHeader: curl_write_callback = { data, size, count, context in
    guard let context, let data else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    return transfer.header(UnsafeRawBufferPointer(start: data, count: size * count))
}

extension StringProtocol {
    fileprivate func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
