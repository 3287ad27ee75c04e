// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Switchboard
import SwitchboardLog
import SwitchboardWire

/// The `llm.<name>` services: chat completions from OpenAI- and Anthropic-compatible providers.
///
/// A gateway instance serves one run (its key is the run id). For each ask it sends one provider
/// request, retrying 429s, 5xx answers and broken connections with exponential backoff and jitter
/// (honouring `Retry-After`), relays a streamed answer as PARTIAL replies `{"delta": "…"}`, and
/// replies with an ``LLMReply``, or an error reply saying what failed after how many attempts.
/// It emits `llm.usage` (tokens, latency, cost) or `llm.failed` for every call, and `llm.locked`
/// the first time a run uses a model with given sampling parameters and prompt template.
public enum LLMGateway {
    /// The gateway's version in determinism locks; bump it when the mapping to providers changes.
    public static let version = "llm-gateway/1"

    /// The agent type serving `configuration` through `client`.
    public static func agentType(_ configuration: LLMGatewayConfiguration, client: HTTPClient) -> AgentType {
        AgentType(descriptor: configuration.descriptor) { _ in
            LLMGatewayAgent(configuration: configuration, client: client)
        }
    }
}

/// What a run's lock holds for each model setting it used.
public struct LLMLockEntry: Codable, Sendable, Hashable {
    public var service: String
    public var api: String
    public var model: String
    public var parameters: LLMParameters
    /// The prompt template's digest (the request's `template`, else the first message's digest).
    public var template: String
}

/// The gateway's events (`type` is the event type).
public struct LLMGatewayEvent: AgentEvent, Hashable {
    public var type: String
    public var lock: LLMLockEntry?
    public var usage: LLMUsage?
    public var model: String?
    public var error: String?
    public var message: String?

    public var eventType: String { type }
}

/// A gateway's state for one run: the lock entries already recorded.
public struct LLMGatewayState: AgentState {
    public var locked: Set<String> = []

    public init() {}

    public mutating func apply(_ event: LLMGatewayEvent) {
        if let lock = event.lock { locked.insert(Self.key(lock)) }
    }

    static func key(_ lock: LLMLockEntry) -> String {
        (try? Payload(json: lock).text) ?? ""
    }
}

/// One attempt's failure: worth another attempt (after a wait), or final.
private struct AttemptFailure: Error {
    var code: String
    var message: String
    var retryable: Bool
    var retryAfter: Int?
}

actor LLMGatewayAgent: AgentActor {
    var state = LLMGatewayState()
    private let configuration: LLMGatewayConfiguration
    private let client: HTTPClient
    private let api: any ProviderAPI

    init(configuration: LLMGatewayConfiguration, client: HTTPClient) {
        self.configuration = configuration
        self.client = client
        api = configuration.api == .anthropic
            ? AnthropicMessagesAPI() : OpenAIChatAPI(schemaForm: configuration.schemaForm)
    }

    func handle(_ message: AgentMessage, context: AgentContext<LLMGatewayAgent>) async throws -> Payload {
        let service = configuration.serviceName
        let request: LLMRequest
        do {
            request = try message.payload.decode(LLMRequest.self)
        } catch {
            throw AskError(service: service, code: "invalid_request",
                           message: "the request is not an LLM request: \(DecodingProblem.describe(error))")
        }
        guard !request.messages.isEmpty else {
            throw AskError(service: service, code: "invalid_request", message: "the request has no messages")
        }
        let lock = LLMLockEntry(
            service: service, api: configuration.api.rawValue, model: configuration.model,
            parameters: configuration.parameters.overridden(by: request),
            template: request.template ?? SHA256Digest.of(request.messages[0].content.utf8).description)
        if !state.locked.contains(LLMGatewayState.key(lock)) {
            try context.emit(LLMGatewayEvent(type: "llm.locked", lock: lock))
        }

        let (path, body) = try api.encode(request, model: configuration.model, defaults: configuration.parameters)
        // Without a stream the provider is silent until the whole answer is ready: only the timeout applies.
        let http = HTTPRequest(method: "POST", url: Self.join(configuration.baseURL, path), headers: headers(),
                               body: body.bytes, timeout: configuration.timeout,
                               connectTimeout: configuration.connectTimeout,
                               stallTimeout: request.stream == true ? configuration.stallTimeout : 0)
        let started = MonotonicTime.milliseconds()
        let policy = configuration.retry
        var attempt = 0
        while true {
            attempt += 1
            do {
                let answer = try await exchange(http, stream: request.stream == true, context: context)
                let usage = LLMUsage(
                    promptTokens: answer.promptTokens, completionTokens: answer.completionTokens,
                    latencyMs: Int(MonotonicTime.milliseconds() - started),
                    costUSD: configuration.price.cost(promptTokens: answer.promptTokens,
                                                      completionTokens: answer.completionTokens),
                    attempts: attempt)
                let model = answer.model.isEmpty ? configuration.model : answer.model
                try context.emit(LLMGatewayEvent(type: "llm.usage", usage: usage, model: model))
                return try Payload(json: LLMReply(content: answer.content, toolCalls: answer.toolCalls,
                                                  finishReason: answer.finishReason, model: model, usage: usage))
            } catch let failure as AttemptFailure {
                var wait = policy.delay(after: attempt)
                // The gateway is the run's edge to the world: its timing is not replayed, only its reply.
                wait = min(Int(Double(wait) * Double.random(in: (1 - policy.jitter)...(1 + policy.jitter))),
                           policy.maximumDelay)
                if let retryAfter = failure.retryAfter { wait = max(wait, retryAfter) }
                let exhausted = attempt >= policy.attempts
                let tooLong = (failure.retryAfter ?? 0) > policy.maximumRetryAfter
                guard failure.retryable, !exhausted, !tooLong else {
                    let code = tooLong ? "retry_after_too_long" : failure.code
                    var text = redact(failure.message)
                    if tooLong {
                        text += "; the provider asks to wait \(failure.retryAfter ?? 0) ms, more than the "
                            + "\(policy.maximumRetryAfter) ms allowed"
                    } else if attempt > 1 || failure.retryable {
                        text += " (gave up after \(attempt) attempt\(attempt == 1 ? "" : "s"))"
                    }
                    let usage = LLMUsage(latencyMs: Int(MonotonicTime.milliseconds() - started), attempts: attempt)
                    try context.emit(LLMGatewayEvent(type: "llm.failed", usage: usage, model: configuration.model,
                                                     error: code, message: text))
                    throw AskError(service: service, code: code, message: text)
                }
                context.logger.debug("llm attempt failed; retrying",
                                     metadata: ["llm.code": "\(failure.code)", "llm.wait_ms": "\(wait)"])
                try await Task.sleep(for: .milliseconds(wait))
            }
        }
    }

    private func headers() -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let key = configuration.apiKey, !key.isEmpty {
            if configuration.api == .anthropic {
                headers.append(("x-api-key", key))
            } else {
                headers.append(("Authorization", "Bearer \(key)"))
            }
        }
        if configuration.api == .anthropic, configuration.headers["anthropic-version"] == nil {
            headers.append(("anthropic-version", "2023-06-01"))
        }
        for (name, value) in configuration.headers.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return headers
    }

    /// One HTTP attempt: the provider's answer, or why it failed.
    private func exchange(_ http: HTTPRequest, stream: Bool, context: AgentContext<LLMGatewayAgent>) async throws
        -> ProviderAnswer
    {
        var head: HTTPResponseHead?
        var body: [UInt8] = []
        var parser = ServerSentEventParser()
        var reader = api.makeStream()
        var relayed = 0
        do {
            for try await part in client.execute(http) {
                switch part {
                case .head(let value):
                    head = value
                case .body(let bytes):
                    guard stream, head?.status == 200 else {
                        body += bytes
                        continue
                    }
                    for event in parser.feed(bytes) {
                        do {
                            if let delta = try reader.take(event) {
                                context.partial(try Payload(json: ["delta": delta]))
                                relayed += 1
                            }
                        } catch let fault as ProviderFault {
                            throw AttemptFailure(code: "bad_response", message: fault.message, retryable: false)
                        }
                    }
                }
            }
            try Task.checkCancellation()
        } catch let error as HTTPClientError {
            let url = http.url
            if relayed > 0 {
                throw AttemptFailure(code: "stream_interrupted",
                                     message: "the stream from \(url) broke after \(relayed) chunks: \(error.message)",
                                     retryable: false)
            }
            let code = switch error.code {
            case .timeout: "timeout"
            case .connect: "connect_failed"
            case .refused: "transfer_refused"
            case .tooLarge: "response_too_large"
            default: "transfer_failed"
            }
            throw AttemptFailure(code: code, message: "\(url): \(error.message)", retryable: error.isRetryable)
        }
        let status = head?.status ?? 0
        guard status == 200 else { throw failure(status: status, head: head, body: body) }
        if stream {
            guard reader.isComplete else {
                throw AttemptFailure(
                    code: "stream_interrupted",
                    message: "the stream from \(http.url) ended before the provider finished the answer "
                        + "(\(relayed) chunks relayed)",
                    retryable: relayed == 0)
            }
            return reader.answer
        }
        do {
            guard let value = try? JSONValue(parsing: body) else {
                throw ProviderFault(status: 0, message: "the provider sent malformed JSON (\(body.count) bytes)")
            }
            return try api.decode(value)
        } catch let fault as ProviderFault {
            throw AttemptFailure(code: "bad_response", message: "\(http.url): \(fault.message)", retryable: false)
        }
    }

    private func failure(status: Int, head: HTTPResponseHead?, body: [UInt8]) -> AttemptFailure {
        let detail = api.errorMessage(body).map { ": \($0)" } ?? ""
        let text = "HTTP \(status) from \(configuration.baseURL)\(detail)"
        let retryAfter = head.flatMap(Self.retryAfter)
        switch status {
        case 429:
            return AttemptFailure(code: "rate_limited", message: text, retryable: true, retryAfter: retryAfter)
        case 500...599:
            return AttemptFailure(code: "provider_unavailable", message: text, retryable: true, retryAfter: retryAfter)
        case 401, 403:
            return AttemptFailure(code: "provider_auth", message: text, retryable: false)
        case 400...499:
            return AttemptFailure(code: "provider_rejected", message: text, retryable: false)
        default:
            return AttemptFailure(code: "bad_response", message: text, retryable: false)
        }
    }

    /// `retry-after-ms`, else `Retry-After` in seconds (a date is not honoured: backoff applies).
    private static func retryAfter(_ head: HTTPResponseHead) -> Int? {
        // A day at most: anything longer, infinite or not a number is as good as none.
        func milliseconds(_ value: Double?) -> Int? {
            guard let value, value.isFinite, value >= 0, value <= 86_400_000 else { return nil }
            return Int(value)
        }
        if let value = milliseconds(head.headers["retry-after-ms"].flatMap(Double.init)) { return value }
        return milliseconds(head.headers["retry-after"].flatMap(Double.init).map { $0 * 1000 })
    }

    /// Keys never leave the gateway, even when a provider quotes them in an error.
    private func redact(_ text: String) -> String {
        guard let key = configuration.apiKey, key.count >= 4 else { return text }
        return text.replacing(key, with: "[redacted]")
    }

    private static func join(_ base: String, _ path: String) -> String {
        base.hasSuffix("/") ? String(base.dropLast()) + path : base + path
    }
}
