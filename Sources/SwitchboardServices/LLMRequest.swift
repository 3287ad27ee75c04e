// SPDX-License-Identifier: Apache-2.0

/// What an agent sends to an `llm.<name>` service: one chat completion, provider-neutral.
///
/// ```json
/// {"messages": [{"role": "user", "content": "Plan a trip"}],
///  "response_format": {"type": "json_schema", "schema": {"type": "object"}},
///  "temperature": 0, "seed": 7, "stream": true}
/// ```
public struct LLMRequest: Codable, Sendable, Hashable {
    public struct Message: Codable, Sendable, Hashable {
        /// `system`, `user`, `assistant` or `tool`.
        public var role: String
        public var content: String
        /// For `tool` messages: the call this is the result of.
        public var toolCallID: String?
        /// For `assistant` messages: the tool calls it made.
        public var toolCalls: [LLMToolCall]?

        public init(role: String, content: String, toolCallID: String? = nil, toolCalls: [LLMToolCall]? = nil) {
            self.role = role
            self.content = content
            self.toolCallID = toolCallID
            self.toolCalls = toolCalls
        }

        enum CodingKeys: String, CodingKey {
            case role, content
            case toolCallID = "tool_call_id"
            case toolCalls = "tool_calls"
        }
    }

    /// A function the model may call: its name, what it does and a JSON Schema for its arguments.
    public struct Tool: Codable, Sendable, Hashable {
        public var name: String
        public var description: String?
        public var parameters: JSONValue

        public init(name: String, description: String? = nil, parameters: JSONValue) {
            self.name = name
            self.description = description
            self.parameters = parameters
        }
    }

    /// The shape of the answer: `text`, `json_object` (any JSON) or `json_schema` (JSON valid
    /// against ``schema``).
    public struct ResponseFormat: Codable, Sendable, Hashable {
        public var type: String
        public var schema: JSONValue?
        /// A name for the schema (providers that want one get `response` when nil).
        public var name: String?
        /// OpenAI's strict mode (the schema must then close every object and require every property).
        public var strict: Bool?

        public init(type: String, schema: JSONValue? = nil, name: String? = nil, strict: Bool? = nil) {
            self.type = type
            self.schema = schema
            self.name = name
            self.strict = strict
        }
    }

    public var messages: [Message]
    public var tools: [Tool]?
    /// `auto`, `none`, `required`, or `{"name": TOOL}` to force one tool.
    public var toolChoice: JSONValue?
    public var responseFormat: ResponseFormat?
    public var temperature: Double?
    public var maxTokens: Int?
    public var topP: Double?
    public var seed: Int64?
    public var stop: [String]?
    /// Relay the answer as it is generated, as PARTIAL replies `{"delta": "…"}`.
    public var stream: Bool?
    /// A digest of the prompt template the caller filled in; it goes into the run's lock. When
    /// absent the lock holds the digest of the first message instead.
    public var template: String?

    public init(messages: [Message], tools: [Tool]? = nil, toolChoice: JSONValue? = nil,
                responseFormat: ResponseFormat? = nil, temperature: Double? = nil, maxTokens: Int? = nil,
                topP: Double? = nil, seed: Int64? = nil, stop: [String]? = nil, stream: Bool? = nil,
                template: String? = nil) {
        self.messages = messages
        self.tools = tools
        self.toolChoice = toolChoice
        self.responseFormat = responseFormat
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.topP = topP
        self.seed = seed
        self.stop = stop
        self.stream = stream
        self.template = template
    }

    enum CodingKeys: String, CodingKey {
        case messages, tools, temperature, seed, stop, stream, template
        case toolChoice = "tool_choice"
        case responseFormat = "response_format"
        case maxTokens = "max_tokens"
        case topP = "top_p"
    }
}

/// A tool call the model made: `arguments` is JSON text as the model wrote it.
public struct LLMToolCall: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// Tokens, time and cost of one call.
public struct LLMUsage: Codable, Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// From the request being sent to the answer being complete, retries included (ms).
    public var latencyMs: Int
    /// From the gateway's price table; 0 when the model has no price.
    public var costUSD: Double
    /// HTTP attempts made.
    public var attempts: Int

    public init(promptTokens: Int = 0, completionTokens: Int = 0, latencyMs: Int = 0, costUSD: Double = 0,
                attempts: Int = 1) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.latencyMs = latencyMs
        self.costUSD = costUSD
        self.attempts = attempts
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case latencyMs = "latency_ms"
        case costUSD = "cost_usd"
        case attempts
    }
}

/// An `llm.<name>` service's reply.
public struct LLMReply: Codable, Sendable, Hashable {
    /// The text answer (for a `json_schema` request, the JSON text).
    public var content: String
    public var toolCalls: [LLMToolCall]
    /// `stop`, `length`, `tool_calls`, … as the provider said.
    public var finishReason: String
    /// The model that answered, as the provider named it.
    public var model: String
    public var usage: LLMUsage

    public init(content: String, toolCalls: [LLMToolCall] = [], finishReason: String, model: String,
                usage: LLMUsage) {
        self.content = content
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.model = model
        self.usage = usage
    }

    enum CodingKeys: String, CodingKey {
        case content, model, usage
        case toolCalls = "tool_calls"
        case finishReason = "finish_reason"
    }
}
