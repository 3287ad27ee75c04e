// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import TestSupport
import Switchboard
import SwitchboardServices

/// The real local model of `scripts/local-llm.sh`, which `scripts/test.sh` sets up and starts.
enum LocalModel {
    static var configuration: LLMGatewayConfiguration {
        let port = ProcessInfo.processInfo.environment["SWITCHBOARD_LLM_PORT"].flatMap(Int.init) ?? 8077
        return .local(port: port)
    }

    /// Fails the test with what to do when the server is not there.
    static func require() async throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        let url = configuration.baseURL + "/models"
        // The server answers one request at a time: a probe may wait behind another test's generation.
        let answer = try? await client.send(HTTPRequest(method: "GET", url: url, timeout: 180_000))
        try #require(answer?.head.status == 200,
                     "no local model at \(url): run scripts/local-llm.sh setup && scripts/local-llm.sh start")
    }
}

@Suite(.serialized) struct LocalModelTests {
    static let planSchema: JSONValue = [
        "type": "object",
        "properties": [
            "steps": [
                "type": "array", "minItems": 1, "maxItems": 3,
                "items": [
                    "type": "object",
                    "properties": [
                        "tool": ["type": "string", "enum": ["time.get_current_time", "time.convert_time"]],
                        "timezone": ["type": "string"],
                    ],
                    "required": ["tool", "timezone"],
                ],
            ],
        ],
        "required": ["steps"],
    ]

    static var planRequest: LLMRequest {
        LLMRequest(
            messages: [.init(role: "user", content: "Make a plan to find the current time in Tokyo. "
                             + "Answer as JSON with a list of steps; each step names a tool and a timezone.")],
            responseFormat: .init(type: "json_schema", schema: planSchema), maxTokens: 200, seed: 42)
    }

    @Test func schemaConstrainedPlanIsValidAndRepeatable() async throws {
        try await LocalModel.require()
        try await withTemporaryDirectory { directory in
            let (first, _) = try await askGateway(LocalModel.configuration, Self.planRequest, directory: directory + "/1")
            let (second, _) = try await askGateway(LocalModel.configuration, Self.planRequest, directory: directory + "/2")
            let plan = try first.payload.decode(LLMReply.self)
            let value = try JSONValue(parsing: Array(plan.content.utf8))
            #expect(JSONSchema(Self.planSchema).violations(of: value) == [], "\(plan.content)")
            #expect(plan.model == "gemma-3-270m-q4_k_m")
            #expect(plan.usage.promptTokens > 0 && plan.usage.completionTokens > 0)
            // Same request, same seed: the same bytes.
            #expect(try second.payload.decode(LLMReply.self).content == plan.content)
        }
    }

    @Test func forcedToolCall() async throws {
        try await LocalModel.require()
        try await withTemporaryDirectory { directory in
            let request = LLMRequest(
                messages: [.init(role: "user", content: "What time is it in Tokyo?")],
                tools: [.init(name: "get_current_time", description: "The current time in a timezone",
                              parameters: ["type": "object", "properties": ["timezone": ["type": "string"]],
                                           "required": ["timezone"]])],
                toolChoice: ["name": "get_current_time"], maxTokens: 100)
            let (result, _) = try await askGateway(LocalModel.configuration, request, directory: directory)
            let reply = try result.payload.decode(LLMReply.self)
            let call = try #require(reply.toolCalls.first)
            #expect(call.name == "get_current_time")
            let arguments = try JSONValue(parsing: Array(call.arguments.utf8))
            #expect(arguments["timezone"]?.stringValue != nil, "\(call.arguments)")
        }
    }

    @Test func streamedAnswerArrivesInPartials() async throws {
        try await LocalModel.require()
        try await withTemporaryDirectory { directory in
            let request = LLMRequest(messages: [.init(role: "user", content: "Say hello in three words.")],
                                     maxTokens: 24, stream: true)
            let (result, events) = try await askGateway(LocalModel.configuration, request, directory: directory)
            let reply = try result.payload.decode(LLMReply.self)
            let deltas = try partials(events).map { try JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
            #expect(deltas.count >= 2)
            #expect(!reply.content.isEmpty)
            #expect(deltas.compactMap { $0["delta"] }.joined() == reply.content)
        }
    }
}
