// SPDX-License-Identifier: Apache-2.0
public import Switchboard
import SwitchboardLog
import SwitchboardWire

/// One call of a tool.
public struct ToolCall: Sendable {
    /// The input, already checked against the tool's schema.
    public var input: JSONValue
    /// The ask's message id: the same on every redelivery of the call, so a tool with side effects
    /// can recognise a repeat and do nothing twice.
    public var idempotencyKey: String
    public var runID: String
}

/// What undoes a completed call: a service to ask and its input (workflow rollback asks it).
public struct Compensation: Codable, Sendable, Hashable {
    public var service: String
    public var input: JSONValue

    public init(service: String, input: JSONValue) {
        self.service = service
        self.input = input
    }
}

/// What a tool returned: its output, or an error it reported as its answer.
public struct ToolResult: Sendable {
    public var output: JSONValue
    /// The tool says it failed; `output` says how.
    public var isError: Bool

    public init(output: JSONValue, isError: Bool = false) {
        self.output = output
        self.isError = isError
    }
}

/// A tool written in Swift, served as `tool.<name>`.
///
/// ```swift
/// let add = NativeTool(name: "math.add", description: "Adds two integers",
///                      inputSchema: ["type": "object", "required": ["a", "b"],
///                                    "properties": ["a": ["type": "integer"], "b": ["type": "integer"]]]) { call in
///     .integer((call.input["a"]?.intValue ?? 0) + (call.input["b"]?.intValue ?? 0))
/// }
/// ```
public struct NativeTool: Sendable {
    public var name: String
    public var description: String
    /// A JSON Schema every input must satisfy; calls that do not get an `invalid_input` error reply.
    public var inputSchema: JSONValue
    /// Goes into determinism locks: bump it when the tool's behaviour changes.
    public var version: String
    /// The compensating action for a completed call, given its input and output.
    public var compensation: (@Sendable (ToolCall, JSONValue) -> Compensation?)?
    public var run: @Sendable (ToolCall) async throws -> JSONValue

    public init(name: String, description: String, inputSchema: JSONValue, version: String = "1",
                compensation: (@Sendable (ToolCall, JSONValue) -> Compensation?)? = nil,
                run: @escaping @Sendable (ToolCall) async throws -> JSONValue) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
        self.version = version
        self.compensation = compensation
        self.run = run
    }
}

/// The `tool.<name>` services: native Swift tools and the tools of MCP servers, every execution
/// audited as a `tool.executed` event (input, output, duration, outcome, idempotency key).
///
/// A reply is `{"output": …}`, with `"compensation": {"service": …, "input": …}` when the tool
/// declares how to undo the call. Invalid input is answered `invalid_input` without running the
/// tool; a tool's own failure is answered `tool_error`.
public enum ToolGateway {
    /// The agent type serving a native tool.
    public static func agentType(_ tool: NativeTool) -> AgentType {
        let descriptor = AgentDescriptor(
            name: "tool.\(tool.name)", version: "native:\(tool.version)",
            configDigest: SHA256Digest.of(tool.inputSchema.bytes).description)
        let schema = JSONSchema(tool.inputSchema)
        return AgentType(descriptor: descriptor) { _ in
            ToolAgent(service: descriptor.name, schema: schema, compensation: tool.compensation) { call in
                ToolResult(output: try await tool.run(call))
            }
        }
    }
}

/// A tool's audit record.
public struct ToolEvent: AgentEvent, Hashable {
    public var tool: String
    public var input: JSONValue
    public var output: JSONValue?
    public var durationMs: Int
    /// `ok`, `invalid_input`, `tool_error` or `failed`.
    public var outcome: String
    public var idempotencyKey: String
    public var compensation: Compensation?

    public var eventType: String { "tool.executed" }
}

/// Tools keep no state; each call is audited.
public struct ToolState: AgentState {
    public init() {}
    public mutating func apply(_ event: ToolEvent) {}
}

actor ToolAgent: AgentActor {
    var state = ToolState()
    private let service: String
    private let schema: JSONSchema
    private let compensation: (@Sendable (ToolCall, JSONValue) -> Compensation?)?
    private let execute: @Sendable (ToolCall) async throws -> ToolResult

    init(service: String, schema: JSONSchema, compensation: (@Sendable (ToolCall, JSONValue) -> Compensation?)?,
         execute: @escaping @Sendable (ToolCall) async throws -> ToolResult) {
        self.service = service
        self.schema = schema
        self.compensation = compensation
        self.execute = execute
    }

    func handle(_ message: AgentMessage, context: AgentContext<ToolAgent>) async throws -> Payload {
        let started = MonotonicTime.milliseconds()
        func audit(_ input: JSONValue, _ output: JSONValue?, _ outcome: String, _ compensation: Compensation? = nil)
            throws
        {
            try context.emit(ToolEvent(
                tool: service, input: input, output: output, durationMs: Int(MonotonicTime.milliseconds() - started),
                outcome: outcome, idempotencyKey: message.messageID, compensation: compensation))
        }
        let input: JSONValue
        do {
            input = try JSONValue(parsing: message.payload.bytes)
        } catch {
            let text = message.payload.text
            try audit(.string(text), nil, "invalid_input")
            throw AskError(service: service, code: "invalid_input", message: "the input is not JSON")
        }
        let problems = schema.violations(of: input)
        guard problems.isEmpty else {
            try audit(input, .array(problems.map(JSONValue.string)), "invalid_input")
            throw AskError(service: service, code: "invalid_input",
                           message: "the input does not match the tool's schema: " + problems.joined(separator: "; "))
        }
        let call = ToolCall(input: input, idempotencyKey: message.messageID, runID: message.runID)
        let result: ToolResult
        do {
            result = try await execute(call)
        } catch let error as AskError {
            try audit(input, .string(error.message), "failed")
            throw AskError(service: service, code: error.code, message: error.message)
        } catch {
            try audit(input, .string("\(error)"), "failed")
            throw AskError(service: service, code: "tool_failed", message: "\(error)")
        }
        if result.isError {
            try audit(input, result.output, "tool_error")
            throw AskError(service: service, code: "tool_error", message: result.output.stringValue ?? result.output.text)
        }
        let undo = compensation?(call, result.output)
        try audit(input, result.output, "ok", undo)
        var reply: [String: JSONValue] = ["output": result.output]
        if let undo { reply["compensation"] = ["service": .string(undo.service), "input": undo.input] }
        return Payload(bytes: JSONValue.object(reply).bytes)
    }
}
