// SPDX-License-Identifier: Apache-2.0
public import Switchboard
import SwitchboardLog

/// Sampling parameters: the gateway's defaults, overridden field by field by each request.
public struct LLMParameters: Codable, Sendable, Hashable {
    public var temperature: Double?
    public var topP: Double?
    public var maxTokens: Int?
    public var seed: Int64?

    public init(temperature: Double? = nil, topP: Double? = nil, maxTokens: Int? = nil, seed: Int64? = nil) {
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.seed = seed
    }

    /// These defaults with every parameter `request` sets taking their place.
    public func overridden(by request: LLMRequest) -> LLMParameters {
        LLMParameters(temperature: request.temperature ?? temperature, topP: request.topP ?? topP,
                      maxTokens: request.maxTokens ?? maxTokens, seed: request.seed ?? seed)
    }

    enum CodingKeys: String, CodingKey {
        case temperature, seed
        case topP = "top_p"
        case maxTokens = "max_tokens"
    }
}

/// How a JSON-schema answer is asked of an OpenAI-compatible server.
public struct LLMSchemaForm: RawRepresentable, Sendable, Hashable, Codable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    /// `{"type": "json_schema", "json_schema": {...}}`, OpenAI's form.
    public static let jsonSchema = LLMSchemaForm(rawValue: "json_schema")
    /// `{"type": "json_object", "schema": {...}}`, the form llama.cpp servers take.
    public static let jsonObject = LLMSchemaForm(rawValue: "json_object")
}

/// Dollars per million tokens.
public struct LLMPrice: Codable, Sendable, Hashable {
    public var prompt: Double
    public var completion: Double

    public init(prompt: Double = 0, completion: Double = 0) {
        self.prompt = prompt
        self.completion = completion
    }

    /// The cost of a call in dollars.
    public func cost(promptTokens: Int, completionTokens: Int) -> Double {
        (Double(promptTokens) * prompt + Double(completionTokens) * completion) / 1_000_000
    }
}

/// When and how often a failed call is tried again.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included.
    public var attempts: Int
    /// The wait before the second attempt (ms); it doubles with each attempt after.
    public var initialDelay: Int
    /// No wait is longer (ms).
    public var maximumDelay: Int
    /// Each wait is scaled by a random factor within 1 ± jitter, so callers do not retry in step.
    public var jitter: Double
    /// A `Retry-After` longer than this (ms) fails the call at once instead of waiting.
    public var maximumRetryAfter: Int

    public init(attempts: Int = 4, initialDelay: Int = 500, maximumDelay: Int = 20_000, jitter: Double = 0.2,
                maximumRetryAfter: Int = 60_000) {
        self.attempts = max(1, attempts)
        self.initialDelay = max(0, initialDelay)
        self.maximumDelay = max(0, maximumDelay)
        self.jitter = min(max(jitter, 0), 1)
        self.maximumRetryAfter = maximumRetryAfter
    }

    /// The wait (ms) after failed attempt `attempt` (1-based), without jitter.
    public func delay(after attempt: Int) -> Int {
        let doubled = Double(initialDelay) * Double(1 << min(max(attempt - 1, 0), 20))
        return Int(min(doubled, Double(maximumDelay)))
    }
}

/// One `llm.<name>` service: which API it speaks, where, with which model and key.
public struct LLMGatewayConfiguration: Sendable {
    /// The wire API a provider speaks.
    public struct API: RawRepresentable, Sendable, Hashable, Codable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// OpenAI Chat Completions (`POST {base}/chat/completions`): OpenAI, llama.cpp, vLLM, Ollama, …
        public static let openAI = API(rawValue: "openai")
        /// Anthropic Messages (`POST {base}/messages`).
        public static let anthropic = API(rawValue: "anthropic")
    }

    /// The service is `llm.<name>`.
    public var name: String
    public var api: API
    /// The API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8077/v1`.
    public var baseURL: String
    public var model: String
    /// Sent as the provider wants it (bearer token or `x-api-key`); never logged, never in an event.
    public var apiKey: String?
    /// Defaults for every request.
    public var parameters: LLMParameters
    public var schemaForm: LLMSchemaForm
    /// Whole call (ms), connection (ms), and longest silence while reading (ms).
    public var timeout: Int
    public var connectTimeout: Int
    public var stallTimeout: Int
    public var retry: RetryPolicy
    public var price: LLMPrice
    /// Extra request headers (Anthropic's `anthropic-version` is added when absent).
    public var headers: [String: String]

    public init(name: String, api: API = .openAI, baseURL: String, model: String, apiKey: String? = nil,
                parameters: LLMParameters = LLMParameters(), schemaForm: LLMSchemaForm = .jsonSchema,
                timeout: Int = 120_000, connectTimeout: Int = 10_000, stallTimeout: Int = 30_000,
                retry: RetryPolicy = RetryPolicy(), price: LLMPrice = LLMPrice(), headers: [String: String] = [:]) {
        self.name = name
        self.api = api
        self.baseURL = baseURL
        self.model = model
        self.apiKey = apiKey
        self.parameters = parameters
        self.schemaForm = schemaForm
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.retry = retry
        self.price = price
        self.headers = headers
    }

    /// The local llama.cpp server of `scripts/local-llm.sh`: what `llm.local` is when nothing else is configured.
    public static func local(port: Int = 8077) -> LLMGatewayConfiguration {
        LLMGatewayConfiguration(
            name: "local", api: .openAI, baseURL: "http://127.0.0.1:\(port)/v1", model: "gemma-3-270m-q4_k_m",
            parameters: LLMParameters(temperature: 0, maxTokens: 512, seed: 42), schemaForm: .jsonObject,
            timeout: 180_000, stallTimeout: 60_000)
    }

    public var serviceName: String { "llm.\(name)" }

    /// What the router records in each run's lock: the gateway's version and a digest of what
    /// decides its answers (API, endpoint, model, default parameters); the key is left out.
    public var descriptor: AgentDescriptor {
        let defaults = (try? Payload(json: parameters).text) ?? ""
        let identity = [api.rawValue, baseURL, model, defaults, schemaForm.rawValue].joined(separator: "\n")
        return AgentDescriptor(name: serviceName, version: LLMGateway.version,
                               configDigest: SHA256Digest.of(identity.utf8).description)
    }
}
