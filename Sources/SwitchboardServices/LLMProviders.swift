// SPDX-License-Identifier: Apache-2.0

/// A provider's answer, before the gateway adds usage figures.
struct ProviderAnswer: Sendable {
    var content = ""
    var toolCalls: [LLMToolCall] = []
    var finishReason = ""
    var model = ""
    var promptTokens = 0
    var completionTokens = 0
}

/// A response the gateway cannot use: an error status, or a body that is not what the API promises.
struct ProviderFault: Error, Sendable {
    /// The HTTP status, 0 when the fault is in the body.
    var status: Int
    var message: String
}

/// Speaks one provider API: builds its requests and reads its answers, whole or streamed.
protocol ProviderAPI: Sendable {
    /// The request's body and path, relative to the configured base URL.
    func encode(_ request: LLMRequest, model: String, defaults: LLMParameters) throws -> (path: String, body: JSONValue)
    func decode(_ body: JSONValue) throws -> ProviderAnswer
    func makeStream() -> any ProviderStream
    /// The provider's own explanation in an error body, if it gave one.
    func errorMessage(_ body: [UInt8]) -> String?
}

extension ProviderAPI {
    /// Both APIs put it in `error.message`.
    func errorMessage(_ body: [UInt8]) -> String? { messageOf(body) }
}

/// Reads one streamed answer event by event.
protocol ProviderStream {
    /// Takes one server-sent event; returns the text it adds to the answer, if any.
    mutating func take(_ event: ServerSentEvent) throws -> String?
    /// True once the provider has said the answer is complete.
    var isComplete: Bool { get }
    var answer: ProviderAnswer { get }
}

private func parseJSON(_ text: String, what: String) throws -> JSONValue {
    do {
        return try JSONValue(parsing: Array(text.utf8))
    } catch {
        throw ProviderFault(status: 0, message: "the provider sent malformed JSON in \(what)")
    }
}

private func messageOf(_ body: [UInt8]) -> String? {
    guard let value = try? JSONValue(parsing: body) else { return nil }
    return value["error"]?["message"]?.stringValue ?? value["error"]?.stringValue ?? value["message"]?.stringValue
}

// MARK: - OpenAI Chat Completions

struct OpenAIChatAPI: ProviderAPI {
    /// `json_schema` (OpenAI's form) or `json_object` with the schema beside it (llama.cpp servers).
    var schemaForm: LLMSchemaForm

    func encode(_ request: LLMRequest, model: String, defaults: LLMParameters) throws
        -> (path: String, body: JSONValue)
    {
        var body: [String: JSONValue] = ["model": .string(model)]
        body["messages"] = .array(request.messages.map { message in
            var object: [String: JSONValue] = ["role": .string(message.role), "content": .string(message.content)]
            if let id = message.toolCallID { object["tool_call_id"] = .string(id) }
            if let calls = message.toolCalls, !calls.isEmpty {
                object["tool_calls"] = .array(calls.map { call in
                    ["id": .string(call.id), "type": "function",
                     "function": ["name": .string(call.name), "arguments": .string(call.arguments)]]
                })
            }
            return .object(object)
        })
        let parameters = defaults.overridden(by: request)
        if let value = parameters.temperature { body["temperature"] = .number(value) }
        if let value = parameters.topP { body["top_p"] = .number(value) }
        if let value = parameters.maxTokens { body["max_tokens"] = .integer(Int64(value)) }
        if let value = parameters.seed { body["seed"] = .integer(value) }
        if let stop = request.stop, !stop.isEmpty { body["stop"] = .array(stop.map(JSONValue.string)) }
        if let tools = request.tools, !tools.isEmpty {
            body["tools"] = .array(tools.map { tool in
                var function: [String: JSONValue] = ["name": .string(tool.name), "parameters": tool.parameters]
                if let description = tool.description { function["description"] = .string(description) }
                return ["type": "function", "function": .object(function)]
            })
        }
        if let choice = request.toolChoice {
            if let name = choice["name"]?.stringValue {
                body["tool_choice"] = ["type": "function", "function": ["name": .string(name)]]
            } else {
                body["tool_choice"] = choice
            }
        }
        if let format = request.responseFormat {
            switch (format.type, schemaForm) {
            case ("json_schema", .jsonSchema):
                body["response_format"] = [
                    "type": "json_schema",
                    "json_schema": ["name": .string(format.name ?? "response"),
                                    "schema": format.schema ?? ["type": "object"], "strict": .bool(format.strict ?? false)],
                ]
            case ("json_schema", .jsonObject):
                body["response_format"] = ["type": "json_object", "schema": format.schema ?? [:]]
            default:
                body["response_format"] = ["type": .string(format.type)]
            }
        }
        if request.stream == true {
            body["stream"] = true
            // Token counts arrive in a last chunk only when asked for.
            body["stream_options"] = ["include_usage": true]
        }
        return ("/chat/completions", .object(body))
    }

    func decode(_ body: JSONValue) throws -> ProviderAnswer {
        guard let choice = body["choices"]?.arrayValue?.first, let message = choice["message"] else {
            throw ProviderFault(status: 0, message: "the provider's answer has no choices[0].message")
        }
        var answer = ProviderAnswer()
        answer.content = message["content"]?.stringValue ?? ""
        answer.toolCalls = (message["tool_calls"]?.arrayValue ?? []).map { call in
            LLMToolCall(id: call["id"]?.stringValue ?? "", name: call["function"]?["name"]?.stringValue ?? "",
                        arguments: call["function"]?["arguments"]?.stringValue ?? "")
        }
        answer.finishReason = choice["finish_reason"]?.stringValue ?? ""
        answer.model = body["model"]?.stringValue ?? ""
        answer.promptTokens = Int(body["usage"]?["prompt_tokens"]?.intValue ?? 0)
        answer.completionTokens = Int(body["usage"]?["completion_tokens"]?.intValue ?? 0)
        return answer
    }

    func makeStream() -> any ProviderStream { Stream() }

    struct Stream: ProviderStream {
        var answer = ProviderAnswer()
        var isComplete = false
        private var calls: [Int: LLMToolCall] = [:]

        mutating func take(_ event: ServerSentEvent) throws -> String? {
            if event.data == "[DONE]" {
                isComplete = true
                answer.toolCalls = calls.keys.sorted().compactMap { calls[$0] }
                return nil
            }
            let chunk = try parseJSON(event.data, what: "a stream chunk")
            if let message = chunk["error"]?["message"]?.stringValue {
                throw ProviderFault(status: 0, message: "the provider failed mid-stream: \(message)")
            }
            if let model = chunk["model"]?.stringValue { answer.model = model }
            if let usage = chunk["usage"], usage != .null {
                answer.promptTokens = Int(usage["prompt_tokens"]?.intValue ?? 0)
                answer.completionTokens = Int(usage["completion_tokens"]?.intValue ?? 0)
            }
            guard let choice = chunk["choices"]?.arrayValue?.first else { return nil }
            if let reason = choice["finish_reason"]?.stringValue { answer.finishReason = reason }
            let delta = choice["delta"]
            for call in delta?["tool_calls"]?.arrayValue ?? [] {
                let index = Int(call["index"]?.intValue ?? 0)
                var current = calls[index] ?? LLMToolCall(id: "", name: "", arguments: "")
                if let id = call["id"]?.stringValue { current.id = id }
                if let name = call["function"]?["name"]?.stringValue { current.name += name }
                if let arguments = call["function"]?["arguments"]?.stringValue { current.arguments += arguments }
                calls[index] = current
            }
            guard let text = delta?["content"]?.stringValue, !text.isEmpty else { return nil }
            answer.content += text
            return text
        }
    }
}

// MARK: - Anthropic Messages

struct AnthropicMessagesAPI: ProviderAPI {
    /// The tool a `json_schema` request is turned into: Anthropic has no schema-constrained text.
    static let responseTool = "respond"

    func encode(_ request: LLMRequest, model: String, defaults: LLMParameters) throws
        -> (path: String, body: JSONValue)
    {
        let parameters = defaults.overridden(by: request)
        var body: [String: JSONValue] = [
            "model": .string(model), "max_tokens": .integer(Int64(parameters.maxTokens ?? 1024)),
        ]
        let system = request.messages.filter { $0.role == "system" }.map(\.content)
        if !system.isEmpty { body["system"] = .string(system.joined(separator: "\n\n")) }
        body["messages"] = .array(request.messages.filter { $0.role != "system" }.map { message in
            switch message.role {
            case "tool":
                return ["role": "user", "content": [[
                    "type": "tool_result", "tool_use_id": .string(message.toolCallID ?? ""),
                    "content": .string(message.content),
                ]]]
            case "assistant" where !(message.toolCalls ?? []).isEmpty:
                var blocks: [JSONValue] = message.content.isEmpty ? [] : [["type": "text", "text": .string(message.content)]]
                for call in message.toolCalls ?? [] {
                    let input = (try? JSONValue(parsing: Array(call.arguments.utf8))) ?? [:]
                    blocks.append(["type": "tool_use", "id": .string(call.id), "name": .string(call.name), "input": input])
                }
                return ["role": "assistant", "content": .array(blocks)]
            default:
                return ["role": .string(message.role), "content": .string(message.content)]
            }
        })
        if let value = parameters.temperature { body["temperature"] = .number(value) }
        if let value = parameters.topP { body["top_p"] = .number(value) }
        if let stop = request.stop, !stop.isEmpty { body["stop_sequences"] = .array(stop.map(JSONValue.string)) }
        var tools: [JSONValue] = (request.tools ?? []).map { tool in
            var object: [String: JSONValue] = ["name": .string(tool.name), "input_schema": tool.parameters]
            if let description = tool.description { object["description"] = .string(description) }
            return .object(object)
        }
        if let format = request.responseFormat, format.type == "json_schema" || format.type == "json_object" {
            tools.append(["name": .string(Self.responseTool), "description": "Give the answer.",
                          "input_schema": format.schema ?? ["type": "object"]])
            body["tool_choice"] = ["type": "tool", "name": .string(Self.responseTool)]
        } else if let choice = request.toolChoice {
            if let name = choice["name"]?.stringValue {
                body["tool_choice"] = ["type": "tool", "name": .string(name)]
            } else if choice.stringValue == "required" {
                body["tool_choice"] = ["type": "any"]
            } else if choice.stringValue == "auto" {
                body["tool_choice"] = ["type": "auto"]
            } else if choice.stringValue == "none" {
                body["tool_choice"] = ["type": "none"]
            }
        }
        if !tools.isEmpty { body["tools"] = .array(tools) }
        if request.stream == true { body["stream"] = true }
        return ("/messages", .object(body))
    }

    func decode(_ body: JSONValue) throws -> ProviderAnswer {
        guard let blocks = body["content"]?.arrayValue else {
            throw ProviderFault(status: 0, message: "the provider's answer has no content blocks")
        }
        var answer = ProviderAnswer()
        for block in blocks {
            switch block["type"]?.stringValue {
            case "text":
                answer.content += block["text"]?.stringValue ?? ""
            case "tool_use":
                let name = block["name"]?.stringValue ?? ""
                let input = block["input"] ?? [:]
                if name == Self.responseTool {
                    answer.content = input.text
                } else {
                    answer.toolCalls.append(LLMToolCall(id: block["id"]?.stringValue ?? "", name: name,
                                                        arguments: input.text))
                }
            default:
                break
            }
        }
        answer.finishReason = body["stop_reason"]?.stringValue ?? ""
        answer.model = body["model"]?.stringValue ?? ""
        answer.promptTokens = Int(body["usage"]?["input_tokens"]?.intValue ?? 0)
        answer.completionTokens = Int(body["usage"]?["output_tokens"]?.intValue ?? 0)
        return answer
    }

    func makeStream() -> any ProviderStream { Stream() }

    struct Stream: ProviderStream {
        var answer = ProviderAnswer()
        var isComplete = false
        /// Content blocks by index: a tool call being assembled, or the answer tool's JSON.
        private var blocks: [Int: LLMToolCall] = [:]

        mutating func take(_ event: ServerSentEvent) throws -> String? {
            let data = try parseJSON(event.data, what: "a stream event")
            let type = data["type"]?.stringValue ?? event.event
            switch type {
            case "message_start":
                answer.model = data["message"]?["model"]?.stringValue ?? ""
                answer.promptTokens = Int(data["message"]?["usage"]?["input_tokens"]?.intValue ?? 0)
            case "content_block_start":
                let index = Int(data["index"]?.intValue ?? 0)
                if let block = data["content_block"], block["type"]?.stringValue == "tool_use" {
                    blocks[index] = LLMToolCall(id: block["id"]?.stringValue ?? "",
                                                name: block["name"]?.stringValue ?? "", arguments: "")
                }
            case "content_block_delta":
                let index = Int(data["index"]?.intValue ?? 0)
                let delta = data["delta"]
                if let text = delta?["text"]?.stringValue {
                    answer.content += text
                    return text
                }
                if let json = delta?["partial_json"]?.stringValue, var call = blocks[index] {
                    call.arguments += json
                    blocks[index] = call
                    if call.name == AnthropicMessagesAPI.responseTool {
                        answer.content += json
                        return json
                    }
                }
            case "message_delta":
                if let reason = data["delta"]?["stop_reason"]?.stringValue { answer.finishReason = reason }
                if let tokens = data["usage"]?["output_tokens"]?.intValue { answer.completionTokens = Int(tokens) }
            case "message_stop":
                isComplete = true
                answer.toolCalls = blocks.keys.sorted().compactMap { blocks[$0] }
                    .filter { $0.name != AnthropicMessagesAPI.responseTool }
                    .map { call in
                        var call = call
                        if call.arguments.isEmpty { call.arguments = "{}" }  // as a whole answer gives it
                        return call
                    }
            case "error":
                let message = data["error"]?["message"]?.stringValue ?? "unknown error"
                throw ProviderFault(status: 0, message: "the provider failed mid-stream: \(message)")
            default:
                break
            }
            return nil
        }
    }
}
