// SPDX-License-Identifier: Apache-2.0
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MCP
public import Switchboard
import SwitchboardLog
import Synchronization
@preconcurrency import SystemPackage

/// Where an MCP server is and how long its tools may take.
public struct MCPServerConfiguration: Sendable, Hashable {
    public enum Transport: Sendable, Hashable {
        /// A child process speaking JSON-RPC lines on its stdin and stdout.
        case stdio(command: String, arguments: [String], environment: [String: String]?)
        /// Streamable HTTP. On Linux the server must answer POSTs with JSON, not an event stream.
        case http(url: String)
    }

    /// Its tools are served as `tool.<name>.<tool>`.
    public var name: String
    public var transport: Transport
    /// One tool call (ms).
    public var callTimeout: Int
    /// Starting up: initializing the session and listing the tools (ms).
    public var startTimeout: Int

    public init(name: String, transport: Transport, callTimeout: Int = 30_000, startTimeout: Int = 30_000) {
        self.name = name
        self.transport = transport
        self.callTimeout = callTimeout
        self.startTimeout = startTimeout
    }
}

/// A tool as its MCP server describes it.
public struct MCPToolInfo: Sendable, Hashable {
    public var name: String
    public var description: String
    public var inputSchema: JSONValue
}

/// A connected MCP server whose tools become `tool.<server>.<tool>` services.
///
/// The server's name and version (from its `initialize` answer) are each tool's version in
/// determinism locks. Calls pass the ask's message id as `_meta.idempotencyKey`.
///
/// > Important: call ``shutdown()`` when done: it disconnects and stops a stdio server's process.
public final class MCPToolServer: Sendable {
    public let configuration: MCPServerConfiguration
    public let serverName: String
    public let serverVersion: String
    public let tools: [MCPToolInfo]
    private let client: Client
    private let child: Mutex<Child?>

    private struct Child: ~Copyable {
        var process: Process
        var toChild: Pipe
        var fromChild: Pipe
    }

    private init(configuration: MCPServerConfiguration, info: Server.Info, tools: [MCPToolInfo], client: Client,
                 child: consuming Child?) {
        self.configuration = configuration
        serverName = info.name
        serverVersion = info.version
        self.tools = tools
        self.client = client
        self.child = Mutex(child)
    }

    /// Starts (stdio) or reaches (HTTP) the server, initializes the session and lists its tools.
    /// - Throws: ``MCPToolServerError`` when the server cannot be started or does not answer.
    public static func connect(_ configuration: MCPServerConfiguration) async throws -> MCPToolServer {
        // A server that dies would otherwise kill this process on the next write to its pipe.
        signal(SIGPIPE, SIG_IGN)
        let client = Client(name: "switchboard", version: LLMGateway.version)
        var child: Child?
        let transport: any Transport
        switch configuration.transport {
        case .stdio(let command, let arguments, let environment):
            let process = Process()
            process.executableURL = URL(fileURLWithPath: command)
            process.arguments = arguments
            if let environment { process.environment = environment }
            let toChild = Pipe()
            let fromChild = Pipe()
            process.standardInput = toChild
            process.standardOutput = fromChild
            process.standardError = FileHandle.nullDevice
            // Set before the start, so a server that dies at once still fails what waits on it.
            process.terminationHandler = { _ in
                Task { await client.disconnect() }
            }
            do {
                try process.run()
            } catch {
                throw MCPToolServerError(server: configuration.name,
                                         message: "cannot start \(command): \(error.localizedDescription)")
            }
            // The transport reads the child's stdout and writes its stdin.
            transport = StdioTransport(input: FileDescriptor(rawValue: fromChild.fileHandleForReading.fileDescriptor),
                                       output: FileDescriptor(rawValue: toChild.fileHandleForWriting.fileDescriptor))
            child = Child(process: process, toChild: toChild, fromChild: fromChild)
        case .http(let url):
            guard let endpoint = URL(string: url) else {
                throw MCPToolServerError(server: configuration.name, message: "not a URL: \(url)")
            }
            transport = HTTPClientTransport(endpoint: endpoint, streaming: false)
        }
        do {
            // Disconnecting is what fails the SDK's pending requests: a timeout has to do it.
            let initialized = try await withDeadline(configuration.startTimeout, onTimeout: { await client.disconnect() }) {
                try await client.connect(transport: transport)
            }
            var tools: [MCPToolInfo] = []
            var cursor: String?
            repeat {
                let current = cursor
                let page = try await withDeadline(configuration.startTimeout, onTimeout: { await client.disconnect() }) {
                    try await client.listTools(cursor: current)
                }
                for tool in page.tools {
                    tools.append(MCPToolInfo(name: tool.name, description: tool.description ?? "",
                                             inputSchema: try JSONValue(mcp: tool.inputSchema)))
                }
                cursor = page.nextCursor
            } while cursor != nil
            return MCPToolServer(configuration: configuration, info: initialized.serverInfo, tools: tools,
                                 client: client, child: child)
        } catch {
            await client.disconnect()
            if let child { Self.stop(child.process) }
            throw MCPToolServerError(server: configuration.name, message: "the server did not initialize: \(error)")
        }
    }

    /// Every tool as an agent type.
    public var agentTypes: [AgentType] {
        tools.map { tool in
            let service = "tool.\(configuration.name).\(tool.name)"
            let identity = tool.description + "\n" + tool.inputSchema.text
            let descriptor = AgentDescriptor(name: service, version: "mcp:\(serverName)@\(serverVersion)",
                                             configDigest: SHA256Digest.of(identity.utf8).description)
            let schema = JSONSchema(tool.inputSchema)
            return AgentType(descriptor: descriptor) { _ in
                ToolAgent(service: service, schema: schema, compensation: nil) { call in
                    try await self.call(tool.name, input: call.input, idempotencyKey: call.idempotencyKey)
                }
            }
        }
    }

    /// Calls `tool` with `input` and the idempotency key in `_meta`.
    public func call(_ tool: String, input: JSONValue, idempotencyKey: String) async throws -> ToolResult {
        let arguments = try input.objectValue.map { try $0.mapValues { try Value(json: $0) } }
        let meta = Metadata(additionalFields: ["idempotencyKey": .string(idempotencyKey)])
        let client = self.client
        let pending: RequestContext<CallTool.Result> = try await client.callTool(name: tool, arguments: arguments,
                                                                                 meta: meta)
        let result: CallTool.Result
        do {
            // Cancelling the request is what resumes the SDK's wait for its answer.
            result = try await withDeadline(configuration.callTimeout, onTimeout: {
                try? await client.cancelRequest(pending.requestID, reason: "timed out")
            }) {
                try await pending.value
            }
        } catch let error as MCPToolServerError {
            throw AskError(service: "tool.\(configuration.name).\(tool)", code: "timeout", message: error.message)
        }
        return ToolResult(output: try Self.output(of: result), isError: result.isError == true)
    }

    /// Disconnects; a stdio server gets end-of-file on its input, then SIGKILL if it lingers.
    public func shutdown() async {
        await client.disconnect()
        let process = child.withLock { child -> Process? in
            guard let current = child.take() else { return nil }
            try? current.toChild.fileHandleForWriting.close()
            return current.process
        }
        if let process { Self.stop(process) }
    }

    private static func stop(_ process: Process) {
        let deadline = Date().addingTimeInterval(1)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Structured content when the server gives it; else a single text that is JSON, as that JSON;
    /// else the content items as MCP shapes them.
    private static func output(of result: CallTool.Result) throws -> JSONValue {
        if let structured = result.structuredContent { return try JSONValue(mcp: structured) }
        if result.content.count == 1, case .text(let text, _, _) = result.content[0] {
            return (try? JSONValue(parsing: Array(text.utf8))) ?? .string(text)
        }
        return try JSONValue(parsing: Array(try JSONEncoder().encode(result.content)))
    }
}

/// An MCP server that could not be started, reached or understood, or a call that timed out.
public struct MCPToolServerError: Error, Sendable, CustomStringConvertible {
    public var server: String
    public var message: String
    public var description: String { "MCP server \(server): \(message)" }
}

/// Runs `body`; past `milliseconds`, runs `onTimeout`, which must make `body` end, and reports a timeout.
/// (The SDK's waits ignore task cancellation, so racing them in a task group would wait for them anyway.)
private func withDeadline<T>(_ milliseconds: Int, onTimeout: @escaping @Sendable () async -> Void,
                             _ body: () async throws -> T) async throws -> T {
    let fired = Flag()
    let timer = Task {
        try await Task.sleep(for: .milliseconds(milliseconds))
        fired.value.withLock { $0 = true }
        await onTimeout()
    }
    defer { timer.cancel() }
    do {
        return try await body()
    } catch {
        guard fired.value.withLock({ $0 }) else { throw error }
        throw MCPToolServerError(server: "", message: "no answer within \(milliseconds) ms")
    }
}

private final class Flag: Sendable {
    let value = Mutex(false)
}

extension JSONValue {
    init(mcp value: MCP.Value) throws {
        self = try JSONValue(parsing: Array(try JSONEncoder().encode(value)))
    }
}

extension Value {
    init(json value: JSONValue) throws {
        self = try JSONDecoder().decode(Value.self, from: Data(value.bytes))
    }
}
