// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import TestSupport
import Switchboard
import SwitchboardLog
import SwitchboardServices

/// The scripted provider (Python standard library) in a child process, on a port of its own.
final class FakeProvider: Sendable {
    let process: ChildProcess
    let port: Int
    let recordPath: String

    init(directory: String) throws {
        recordPath = directory + "/requests.jsonl"
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Python/fake_provider.py").path
        process = try ChildProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-u", script, "--record", recordPath])
        let line = try #require(process.waitForLine { $0.hasPrefix("PORT ") }, "fake provider: \(process.standardError)")
        port = try #require(Int(line.dropFirst(5)))
    }

    deinit { process.kill() }

    /// The requests it received, as JSON objects.
    var requests: [[String: Any]] {
        let text = (try? String(contentsOfFile: recordPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func configuration(_ api: LLMGatewayConfiguration.API = .openAI, key: String? = "sk-test-key-0000",
                       attempts: Int = 3, timeout: Int = 10_000) -> LLMGatewayConfiguration {
        LLMGatewayConfiguration(
            name: "fake", api: api, baseURL: "http://127.0.0.1:\(port)/v1", model: "fake-model", apiKey: key,
            parameters: LLMParameters(temperature: 0.5, maxTokens: 64), timeout: timeout,
            stallTimeout: timeout, retry: RetryPolicy(attempts: attempts, initialDelay: 20, maximumDelay: 200),
            price: LLMPrice(prompt: 1, completion: 2))
    }
}

/// One ask to `llm.fake` through an embedded router and host; returns the result and the run's events.
func askGateway(_ configuration: LLMGatewayConfiguration, _ request: LLMRequest, directory: String) async throws
    -> (result: RunClient.Result, events: [RecordedEvent])
{
    let client = HTTPClient()
    defer { client.shutdown() }
    let embedded = try Embedded(directory: directory, types: [LLMGateway.agentType(configuration, client: client)])
    let results = try await embedded.serving { embedded in
        try await embedded.runs(configuration.serviceName, inputs: [try Payload(json: request)])
    }
    let result = try #require(results.first)
    let log = embedded.router.router.log
    try embedded.router.stop()
    return (result, try log.events(inRun: result.runID))
}

func user(_ text: String, stream: Bool? = nil) -> LLMRequest {
    LLMRequest(messages: [.init(role: "user", content: text)], stream: stream)
}

func decoded<T: Decodable>(_ type: T.Type, _ event: RecordedEvent) throws -> T {
    try JSONDecoder().decode(type, from: Data(event.jsonPayload))
}

/// The payload frames of the run's partial replies.
func partials(_ events: [RecordedEvent]) throws -> [String] {
    try events.filter { $0.type == "reply.partial" }.map { event in
        let object = try #require(try JSONSerialization.jsonObject(with: Data(event.jsonPayload)) as? [String: Any])
        let body = try #require(object["body"] as? [String])
        let encoded = try #require(body.last)
        let last = try #require(Data(base64Encoded: encoded))
        return String(decoding: last, as: UTF8.self)
    }
}

@Suite struct LLMGatewayTests {
    @Test func openAIAnswerCarriesUsageCostAndLock() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            var request = user("hello script:ok")
            request.seed = 9
            let (result, events) = try await askGateway(provider.configuration(), request, directory: directory)
            #expect(result.error == nil)
            let reply = try result.payload.decode(LLMReply.self)
            #expect(reply.content == "echo: hello script:ok")
            #expect(reply.finishReason == "stop")
            #expect(reply.usage.promptTokens == 11 && reply.usage.completionTokens == 7 && reply.usage.attempts == 1)
            #expect(abs(reply.usage.costUSD - 25e-6) < 1e-12)  // 11 × $1/M + 7 × $2/M

            let usage = try decoded(LLMGatewayEvent.self, try #require(events.first { $0.type == "llm.usage" }))
            #expect(usage.usage == reply.usage)
            let lock = try decoded(LLMGatewayEvent.self, try #require(events.first { $0.type == "llm.locked" })).lock
            #expect(lock?.model == "fake-model")
            #expect(lock?.parameters == LLMParameters(temperature: 0.5, maxTokens: 64, seed: 9))
            #expect(lock?.template.count == 64)
            let recorded = try #require(events.first { $0.type == "lock.recorded" })
            #expect(String(decoding: recorded.payload, as: UTF8.self).contains("llm-gateway/1"))

            let sent = try #require(provider.requests.first)
            #expect(sent["path"] as? String == "/v1/chat/completions")
            #expect((sent["headers"] as? [String: String])?["Authorization"] == "Bearer sk-test-key-0000")
            let body = try #require(sent["body"] as? [String: Any])
            #expect(body["model"] as? String == "fake-model")
            #expect(body["temperature"] as? Double == 0.5 && body["seed"] as? Int == 9)
        }
    }

    @Test func rateLimitIsRetriedAfterRetryAfter() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let (result, _) = try await askGateway(provider.configuration(), user("a script:429-then-ok"),
                                                   directory: directory)
            #expect(result.error == nil)
            let reply = try result.payload.decode(LLMReply.self)
            #expect(reply.usage.attempts == 2)
            // Retry-After: 1 outweighs the 20 ms backoff.
            #expect(reply.usage.latencyMs >= 1000)
            #expect(provider.requests.count == 2)
        }
    }

    @Test func serverErrorsAreRetriedThenReportedClearly() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let (recovered, _) = try await askGateway(provider.configuration(), user("b script:500-then-ok"),
                                                      directory: directory + "/a")
            #expect(try recovered.payload.decode(LLMReply.self).usage.attempts == 2)

            let (failed, events) = try await askGateway(provider.configuration(attempts: 3),
                                                        user("c script:always-500"), directory: directory + "/b")
            let error = try #require(failed.error)
            #expect(error.code == "provider_unavailable")
            #expect(error.message.contains("HTTP 500"))
            #expect(error.message.contains("internal failure"))
            #expect(error.message.contains("gave up after 3 attempts"))
            #expect(provider.requests.count == 2 + 3)
            let failure = try decoded(LLMGatewayEvent.self, try #require(events.first { $0.type == "llm.failed" }))
            #expect(failure.error == "provider_unavailable" && failure.usage?.attempts == 3)
        }
    }

    @Test func malformedAnswerIsAClearErrorNotARetry() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let (result, _) = try await askGateway(provider.configuration(), user("d script:malformed"),
                                                   directory: directory)
            let error = try #require(result.error)
            #expect(error.code == "bad_response")
            #expect(error.message.contains("malformed JSON"))
            #expect(provider.requests.count == 1)
        }
    }

    @Test func stalledProviderTimesOut() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let (result, _) = try await askGateway(provider.configuration(attempts: 2, timeout: 1500),
                                                   user("e script:stall"), directory: directory)
            let error = try #require(result.error)
            #expect(error.code == "timeout")
            #expect(error.message.contains("gave up after 2 attempts"))
            #expect(provider.requests.count == 2)
        }
    }

    @Test func nonsenseRetryAfterFallsBackToBackoff() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let (result, _) = try await askGateway(provider.configuration(), user("h script:nonsense-retry-after"),
                                                   directory: directory)
            #expect(try result.payload.decode(LLMReply.self).usage.attempts == 2)
        }
    }

    @Test func retryAfterBeyondTheLimitFailsAtOnce() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let (result, _) = try await askGateway(provider.configuration(), user("f script:long-retry"),
                                                   directory: directory)
            let error = try #require(result.error)
            #expect(error.code == "retry_after_too_long")
            #expect(error.message.contains("3600000 ms"))
            #expect(provider.requests.count == 1)
        }
    }

    @Test func unreachableProviderIsAConnectError() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            var configuration = provider.configuration(attempts: 2)
            configuration.baseURL = "http://127.0.0.1:1/v1"
            let (result, _) = try await askGateway(configuration, user("g"), directory: directory)
            let error = try #require(result.error)
            #expect(error.code == "connect_failed")
            #expect(error.message.contains("gave up after 2 attempts"))
        }
    }

    @Test func streamIsRelayedAsPartials() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            for api in [LLMGatewayConfiguration.API.openAI, .anthropic] {
                let (result, events) = try await askGateway(
                    provider.configuration(api), user("stream this \(api.rawValue) script:ok", stream: true),
                    directory: directory + "/" + api.rawValue)
                let reply = try result.payload.decode(LLMReply.self)
                #expect(reply.content == "echo: stream this \(api.rawValue) script:ok")
                #expect(reply.usage.promptTokens == 11 && reply.usage.completionTokens == 7)
                let deltas = try partials(events).map { try JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
                #expect(deltas.count >= 3)
                #expect(deltas.compactMap { $0["delta"] }.joined() == reply.content)
            }
        }
    }

    @Test func streamCutHalfWayIsReportedAfterItsPartials() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let (result, events) = try await askGateway(provider.configuration(),
                                                        user("a long answer to cut script:cut", stream: true),
                                                        directory: directory)
            let error = try #require(result.error)
            #expect(error.code == "stream_interrupted")
            #expect(error.message.contains("after 2 chunks"))
            #expect(try partials(events).count == 2)
            #expect(provider.requests.count == 1)
        }
    }

    @Test func anthropicSchemaAnswerAndToolCall() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            var request = user("plan script:json")
            request.responseFormat = .init(type: "json_schema", schema: ["type": "object"])
            let (planned, _) = try await askGateway(provider.configuration(.anthropic), request,
                                                    directory: directory + "/a")
            let plan = try planned.payload.decode(LLMReply.self)
            #expect(try JSONValue(parsing: Array(plan.content.utf8)) == ["steps": ["a", "b"]])

            var toolRequest = user("weather script:tool")
            toolRequest.tools = [.init(name: "weather", parameters: ["type": "object"])]
            toolRequest.toolChoice = ["name": "weather"]
            let (called, _) = try await askGateway(provider.configuration(.anthropic), toolRequest,
                                                   directory: directory + "/b")
            let call = try #require(try called.payload.decode(LLMReply.self).toolCalls.first)
            #expect(call.name == "weather")
            #expect(try JSONValue(parsing: Array(call.arguments.utf8)) == ["city": "Paris"])

            let sent = provider.requests
            #expect(sent.allSatisfy { $0["path"] as? String == "/v1/messages" })
            let headers = try #require(sent.first?["headers"] as? [String: String])
            #expect(headers["x-api-key"] == "sk-test-key-0000" && headers["anthropic-version"] == "2023-06-01")
            let forced = try #require(sent.last?["body"] as? [String: Any])
            #expect((forced["tool_choice"] as? [String: String]) == ["type": "tool", "name": "weather"])
        }
    }

    @Test func openAIForcedToolCallAndSchemaForms() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            var request = user("weather script:tool")
            request.tools = [.init(name: "weather", description: "Weather now", parameters: ["type": "object"])]
            request.toolChoice = ["name": "weather"]
            request.responseFormat = .init(type: "json_schema", schema: ["type": "object"])
            var local = provider.configuration()
            local.schemaForm = .jsonObject
            let (result, _) = try await askGateway(local, request, directory: directory)
            let reply = try result.payload.decode(LLMReply.self)
            #expect(reply.toolCalls == [LLMToolCall(id: "call_1", name: "weather", arguments: #"{"city": "Paris"}"#)])
            let body = try #require(provider.requests.first?["body"] as? [String: Any])
            let choice = try #require(body["tool_choice"] as? [String: Any])
            #expect((choice["function"] as? [String: String])?["name"] == "weather")
            let format = try #require(body["response_format"] as? [String: Any])
            #expect(format["type"] as? String == "json_object" && format["schema"] != nil)
        }
    }

    @Test func invalidRequestIsRejectedWithoutCallingTheProvider() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let client = HTTPClient()
            defer { client.shutdown() }
            let embedded = try Embedded(directory: directory,
                                        types: [LLMGateway.agentType(provider.configuration(), client: client)])
            let results = try await embedded.serving { embedded in
                try await embedded.runs("llm.fake", inputs: [Payload(text: #"{"prompt":"hi"}"#), Payload(text: "{")])
            }
            try embedded.router.stop()
            #expect(results.map { $0.error?.code } == ["invalid_request", "invalid_request"])
            #expect(results.contains { $0.error?.message.contains("missing \"messages\"") == true })
            #expect(provider.requests.isEmpty)
        }
    }

    @Test func connectionsAreReusedAcrossRequests() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let client = HTTPClient()
            defer { client.shutdown() }
            let body = Array(#"{"model":"m","messages":[{"role":"user","content":"reuse script:ok"}]}"#.utf8)
            for _ in 0..<3 {
                let (head, _) = try await client.send(HTTPRequest(
                    url: "http://127.0.0.1:\(provider.port)/v1/chat/completions",
                    headers: [("Content-Type", "application/json")], body: body))
                #expect(head.status == 200)
            }
            // One TCP connection, so one client port, for all three.
            let ports = Set(provider.requests.compactMap { $0["peer_port"] as? Int })
            #expect(provider.requests.count == 3 && ports.count == 1)
        }
    }

    @Test func apiKeyNeverReachesTheLogOrReplies() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let key = "sk-live-DO-NOT-LOG-7f3a9c"
            let data = directory + "/data"
            let (result, _) = try await askGateway(provider.configuration(key: key),
                                                   user("who am i script:unauthorized"), directory: data)
            let error = try #require(result.error)
            #expect(error.code == "provider_auth")
            #expect(error.message.contains("[redacted]"))
            #expect(!error.message.contains(key))
            let (ok, _) = try await askGateway(provider.configuration(key: key), user("fine script:ok"),
                                               directory: data + "2")
            #expect(ok.error == nil)
            // The key did reach the provider…
            #expect(provider.requests.allSatisfy {
                ($0["headers"] as? [String: String])?["Authorization"] == "Bearer \(key)"
            })
            // …and nothing the router wrote holds it.
            for folder in [data, data + "2"] {
                #expect(try files(in: folder, containing: key) == [], "these files hold the key")
            }
        }
    }
}
