// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import Logging
import Switchboard
import SwitchboardServices

struct ServicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "services",
        abstract: "Serve LLM gateways (llm.<name>) and MCP tools (tool.<server>.<tool>) as workers of a router.",
        discussion: """
            Without --config: llm.local is the local model of scripts/local-llm.sh (port $SWITCHBOARD_LLM_PORT, \
            default 8077); llm.openai is added when OPENAI_API_KEY is set, llm.anthropic when ANTHROPIC_API_KEY is.

            A config file (JSON) lists providers and MCP servers:
              {"llm": [{"name": "openai", "api": "openai", "baseURL": "https://api.openai.com/v1",
                        "model": "gpt-4o-mini", "apiKeyEnv": "OPENAI_API_KEY",
                        "parameters": {"temperature": 0, "max_tokens": 512},
                        "retry": {"attempts": 4, "initialDelayMs": 500}, "timeoutMs": 120000,
                        "price": {"prompt": 0.15, "completion": 0.6}}],
               "mcp": [{"name": "time", "command": ["mcp-server-time"]},
                       {"name": "search", "url": "http://127.0.0.1:9000/mcp"}]}
            A key comes from "apiKeyEnv" (a variable's name), "apiKeyFile" (a file holding it) or "apiKey".
            Keys are sent to their provider only: never logged, printed or written to the event log.
            """)
    @Option(help: "The router's endpoint, e.g. tcp://127.0.0.1:5555.") var router: String
    @Option(help: "A services config file (JSON, see above).") var config: String?
    @Option(help: ArgumentHelp("An MCP server over stdio, as NAME=COMMAND [ARGS…]; repeatable.",
                               valueName: "name=command"))
    var mcp: [String] = []
    @Option(help: "Messages each service takes at once.") var capacity: Int = 64
    @Option(help: "Heartbeat interval towards the router, in milliseconds (match the router's).")
    var heartbeat: Int = 2500
    @Option(help: "Log level on standard error: trace, debug, info, warning, error.") var logLevel: String = "warning"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard heartbeat >= 10 else { throw ValidationError("--heartbeat must be at least 10 ms") }
        let environment = ProcessInfo.processInfo.environment
        var file = ServicesFile()
        if let config {
            file = try ServicesFile.load(config)
        } else {
            file.llm = ServicesFile.defaultProviders(environment)
        }
        for entry in mcp { file.mcp = (file.mcp ?? []) + [try MCPEntry(argument: entry)] }
        let configDirectory = config.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "."
        let providers = try (file.llm ?? []).map {
            try $0.configuration(environment: environment, directory: configDirectory)
        }

        let client = HTTPClient()
        var types = providers.map { LLMGateway.agentType($0, client: client) }
        var servers: [MCPToolServer] = []
        for entry in file.mcp ?? [] {
            let server = try await MCPToolServer.connect(try entry.configuration(environment: environment))
            servers.append(server)
            types += server.agentTypes
        }
        guard !types.isEmpty else { throw ValidationError("no services configured") }
        stopOnSignals()
        var logger = Logger(label: "switchboard.services", factory: { label in StreamLogHandler.standardError(label: label) })
        logger.logLevel = level
        let host = try AgentHost(types: types, configuration: AgentHostConfiguration(
            endpoint: router, capacity: capacity, heartbeatInterval: heartbeat),
                                 logger: logger)
        for provider in providers {
            let key = provider.apiKey == nil ? "no key" : "key set"
            print("\(provider.serviceName) -> \(provider.baseURL) model \(provider.model) (\(provider.api.rawValue), \(key))")
        }
        for server in servers {
            print("MCP \(server.configuration.name): \(server.serverName) \(server.serverVersion), "
                  + "\(server.tools.count) tools")
        }
        print("services \(host.serviceNames.joined(separator: ", ")) serving at \(router)")
        fflush(nil)
        await serve(host)
        for server in servers { await server.shutdown() }
        client.shutdown()
        print("services stopped after \(host.handledCount) messages")
    }
}

/// The services config file.
struct ServicesFile: Decodable {
    var llm: [LLMEntry]?
    var mcp: [MCPEntry]?

    init() {}

    static func load(_ path: String) throws -> ServicesFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError("cannot read --config \(path): \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(ServicesFile.self, from: data)
        } catch {
            throw ValidationError("--config \(path) is not a valid services file: \(DecodingProblem.describe(error))")
        }
    }

    static func defaultProviders(_ environment: [String: String]) -> [LLMEntry] {
        let local = LLMGatewayConfiguration.local(
            port: environment["SWITCHBOARD_LLM_PORT"].flatMap(Int.init) ?? 8077)
        var entries = [LLMEntry(name: local.name, baseURL: local.baseURL, model: local.model,
                                schemaForm: local.schemaForm.rawValue, parameters: local.parameters,
                                timeoutMs: local.timeout, stallTimeoutMs: local.stallTimeout)]
        if environment["OPENAI_API_KEY"]?.isEmpty == false {
            entries.append(LLMEntry(name: "openai", baseURL: "https://api.openai.com/v1", model: "gpt-4o-mini",
                                    apiKeyEnv: "OPENAI_API_KEY"))
        }
        if environment["ANTHROPIC_API_KEY"]?.isEmpty == false {
            entries.append(LLMEntry(name: "anthropic", api: "anthropic", baseURL: "https://api.anthropic.com/v1",
                                    model: "claude-3-5-haiku-latest", apiKeyEnv: "ANTHROPIC_API_KEY"))
        }
        return entries
    }
}

struct LLMEntry: Decodable {
    struct Retry: Decodable {
        var attempts: Int?
        var initialDelayMs: Int?
        var maximumDelayMs: Int?
        var jitter: Double?
        var maximumRetryAfterMs: Int?
    }

    var name: String
    var api: String?
    var baseURL: String
    var model: String
    var apiKeyEnv: String?
    var apiKeyFile: String?
    var apiKey: String?
    var schemaForm: String?
    var parameters: LLMParameters?
    var timeoutMs: Int?
    var connectTimeoutMs: Int?
    var stallTimeoutMs: Int?
    var retry: Retry?
    var price: LLMPrice?
    var headers: [String: String]?

    init(name: String, api: String? = nil, baseURL: String, model: String, apiKeyEnv: String? = nil,
         schemaForm: String? = nil, parameters: LLMParameters? = nil, timeoutMs: Int? = nil,
         stallTimeoutMs: Int? = nil) {
        self.name = name
        self.api = api
        self.baseURL = baseURL
        self.model = model
        self.apiKeyEnv = apiKeyEnv
        self.schemaForm = schemaForm
        self.parameters = parameters
        self.timeoutMs = timeoutMs
        self.stallTimeoutMs = stallTimeoutMs
    }

    func configuration(environment: [String: String], directory: String) throws -> LLMGatewayConfiguration {
        let service = "llm.\(name)"
        let kind = LLMGatewayConfiguration.API(rawValue: api ?? "openai")
        guard kind == .openAI || kind == .anthropic else {
            throw ValidationError("\(service): api must be openai or anthropic, not \(kind.rawValue)")
        }
        var key = apiKey?.trimmingCharacters(in: .whitespacesAndNewlines)
        if let variable = apiKeyEnv {
            guard let value = environment[variable]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty
            else {
                throw ValidationError("\(service): the environment variable \(variable) (its apiKeyEnv) is not set")
            }
            key = value
        }
        if let path = apiKeyFile {
            let full = path.hasPrefix("/") ? path : directory + "/" + path
            guard let text = try? String(contentsOfFile: full, encoding: .utf8) else {
                throw ValidationError("\(service): cannot read its apiKeyFile \(full)")
            }
            key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let defaults = LLMGatewayConfiguration(name: name, baseURL: baseURL, model: model)
        let policy = RetryPolicy(
            attempts: retry?.attempts ?? defaults.retry.attempts,
            initialDelay: retry?.initialDelayMs ?? defaults.retry.initialDelay,
            maximumDelay: retry?.maximumDelayMs ?? defaults.retry.maximumDelay,
            jitter: retry?.jitter ?? defaults.retry.jitter,
            maximumRetryAfter: retry?.maximumRetryAfterMs ?? defaults.retry.maximumRetryAfter)
        return LLMGatewayConfiguration(
            name: name, api: kind, baseURL: baseURL, model: model, apiKey: key,
            parameters: parameters ?? LLMParameters(),
            schemaForm: schemaForm.map(LLMSchemaForm.init(rawValue:)) ?? .jsonSchema,
            timeout: timeoutMs ?? defaults.timeout, connectTimeout: connectTimeoutMs ?? defaults.connectTimeout,
            stallTimeout: stallTimeoutMs ?? defaults.stallTimeout, retry: policy, price: price ?? LLMPrice(),
            headers: headers ?? [:])
    }
}

struct MCPEntry: Decodable {
    var name: String
    var command: [String]?
    var url: String?
    var env: [String: String]?
    var callTimeoutMs: Int?

    /// `NAME=COMMAND [ARGS…]` from the command line.
    init(argument: String) throws {
        guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
            throw ValidationError("--mcp takes NAME=COMMAND [ARGS…], not \(argument)")
        }
        name = String(argument[..<equals])
        command = argument[argument.index(after: equals)...].split(separator: " ").map(String.init)
    }

    func configuration(environment: [String: String]) throws -> MCPServerConfiguration {
        let timeout = callTimeoutMs ?? 30_000
        if let url {
            return MCPServerConfiguration(name: name, transport: .http(url: url), callTimeout: timeout)
        }
        guard let command, let program = command.first else {
            throw ValidationError("MCP server \(name) needs a command or a url")
        }
        guard let path = Self.resolve(program, environment: environment) else {
            throw ValidationError("MCP server \(name): \(program) is not an executable file or on PATH")
        }
        let merged = env.map { environment.merging($0) { _, own in own } }
        return MCPServerConfiguration(
            name: name, transport: .stdio(command: path, arguments: Array(command.dropFirst()), environment: merged),
            callTimeout: timeout)
    }

    private static func resolve(_ program: String, environment: [String: String]) -> String? {
        if program.contains("/") { return FileManager.default.isExecutableFile(atPath: program) ? program : nil }
        for directory in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
