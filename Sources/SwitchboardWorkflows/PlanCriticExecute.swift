// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Switchboard
public import SwitchboardServices
import SwitchboardLog

/// An agent that prompts `llm`: its lock pins the prompt and the LLM service it asks.
func llmAgentDescriptor(_ name: String, prompt: String, llm: String) -> AgentDescriptor {
    let digest = SHA256Digest.of(Array((prompt + "\u{0}" + llm).utf8)).description.prefix(16)
    return AgentDescriptor(name: name, version: "1.0", configDigest: String(digest))
}

/// The built-in demo workflow: a planner asks the LLM for a JSON plan under a schema, a critic
/// reviews it (rules first, then the LLM; a bounded revise loop), and an executor runs the plan's
/// steps as tool calls: the MCP time server's tools and the native `notes.write`.
public enum PlanCriticExecute {
    /// The tools a plan may use, with the JSON Schema of their arguments.
    public static let tools: [(name: String, description: String, arguments: JSONValue)] = [
        ("time.get_current_time", "the current time in an IANA time zone",
         ["type": "object", "properties": ["timezone": zoneSchema], "required": ["timezone"],
          "additionalProperties": false]),
        ("time.convert_time", "convert a time of day (HH:MM) from one time zone to another",
         ["type": "object",
          "properties": ["source_timezone": zoneSchema, "time": ["type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"],
                         "target_timezone": zoneSchema],
          "required": ["source_timezone", "time", "target_timezone"], "additionalProperties": false]),
        ("notes.write", "save a short note under a title",
         ["type": "object",
          "properties": ["title": ["type": "string", "pattern": "^[a-z0-9-]{1,40}$"],
                         "text": ["type": "string", "minLength": 1, "maxLength": 500]],
          "required": ["title", "text"], "additionalProperties": false]),
    ]

    static let zones: [JSONValue] = ["UTC", "Europe/London", "Europe/Paris", "Asia/Tokyo", "America/New_York",
                                     "Australia/Sydney"]
    static let zoneSchema: JSONValue = ["type": "string", "enum": .array(zones)]

    /// A plan: one to four tool calls, each with arguments valid for its tool.
    public static let planSchema: JSONValue = [
        "type": "object",
        "properties": [
            "steps": [
                "type": "array", "minItems": 1, "maxItems": 4,
                "items": .object(["anyOf": .array(tools.map { tool in
                    ["type": "object",
                     "properties": ["tool": ["const": .string(tool.name)], "arguments": tool.arguments],
                     "required": ["tool", "arguments"], "additionalProperties": false]
                })]),
            ],
        ],
        "required": ["steps"], "additionalProperties": false,
    ]

    public static let reviewSchema: JSONValue = [
        "type": "object",
        "properties": [
            "verdict": ["type": "string", "enum": ["approve", "revise"]],
            "changes": ["type": "array", "maxItems": 3, "items": ["type": "string", "maxLength": 200]],
        ],
        "required": ["verdict", "changes"], "additionalProperties": false,
    ]

    public static let defaultGoal = "What time is it in Tokyo now, and what is 12:00 in London in New York time? "
        + "Save the answers as a note titled time-check."

    /// The workflow: plan → review → (approve: execute | revise: plan again, three plans at most).
    public static let definition = WorkflowDefinition(
        name: "plan-critic-execute", version: "1", start: "plan",
        steps: [
            "plan": .init(ask: "planner",
                          input: ["goal": "$input.goal", "previous": "$steps.plan", "changes": "$steps.review.changes"],
                          next: .step("review"), maxVisits: 3),
            "review": .init(ask: "critic",
                            input: ["goal": "$input.goal", "plan": "$steps.plan", "round": "$visits.plan"],
                            next: .edges([
                                .init(when: .init(path: "$steps.review.verdict", equals: "approve"), to: "execute"),
                                .init(when: nil, to: "plan"),
                            ])),
            "execute": .init(ask: "executor", input: ["plan": "$steps.plan"]),
        ],
        output: ["goal": "$input.goal", "plan": "$steps.plan", "results": "$steps.execute.results"],
        onFailure: .rollback,
        retry: .init(attempts: 2, backoffMs: 200))

    /// Planner, critic and executor asking `llmService`; notes are written under `notesDirectory`.
    public static func agentTypes(llmService: String, notesDirectory: String) -> [AgentType] {
        [
            AgentType(descriptor: Planner.descriptor(llmService)) { _ in Planner(llm: llmService) },
            AgentType(descriptor: Critic.descriptor(llmService)) { _ in Critic(llm: llmService) },
            AgentType(Executor.self),
            ToolGateway.agentType(notesWrite(directory: notesDirectory)),
            ToolGateway.agentType(notesDelete(directory: notesDirectory)),
        ]
    }

    static func notePath(_ directory: String, _ title: String) -> String {
        directory + "/" + title + ".md"
    }

    static func notesWrite(directory: String) -> NativeTool {
        NativeTool(
            name: "notes.write", description: "Saves a note.", inputSchema: tools[2].arguments,
            compensation: { call, _ in Compensation(service: "tool.notes.delete", input: ["title": call.input["title"] ?? ""]) }
        ) { call in
            let title = call.input["title"]?.stringValue ?? ""
            let text = call.input["text"]?.stringValue ?? ""
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: notePath(directory, title), contents: Data(text.utf8)) else {
                throw AskError(service: "tool.notes.write", code: "tool_error", message: "cannot write note \(title)")
            }
            return ["saved": .string(title), "bytes": .integer(Int64(text.utf8.count))]
        }
    }

    static func notesDelete(directory: String) -> NativeTool {
        NativeTool(
            name: "notes.delete", description: "Deletes a note.",
            inputSchema: ["type": "object", "properties": ["title": ["type": "string", "pattern": "^[a-z0-9-]{1,40}$"]],
                          "required": ["title"]]
        ) { call in
            let title = call.input["title"]?.stringValue ?? ""
            let existed = FileManager.default.fileExists(atPath: notePath(directory, title))
            if existed { try FileManager.default.removeItem(atPath: notePath(directory, title)) }
            return ["deleted": .string(title), "existed": .bool(existed)]
        }
    }

    static func toolList() -> String {
        tools.map { "- \($0.name): \($0.description); arguments \($0.arguments.text)" }.joined(separator: "\n")
    }
}

private func llmReply(_ payload: Payload, service: String) throws -> JSONValue {
    let reply = try payload.decode(LLMReply.self)
    guard let value = try? JSONValue(parsing: Array(reply.content.utf8)) else {
        throw AskError(service: service, code: "bad_response", message: "the model's answer is not JSON: \(reply.content.prefix(200))")
    }
    return value
}

/// Asks the LLM for a plan under ``PlanCriticExecute/planSchema``; replies with the plan.
public actor Planner: AgentActor {
    public var state = NoState()
    let llm: String

    static let prompt = "You plan tool calls for a goal. Use only these tools:\n\(PlanCriticExecute.toolList())\n"
        + "Answer with JSON {\"steps\": [{\"tool\": name, \"arguments\": {...}}]}, at most 4 steps. "
        + "The last step saves the answers with notes.write.\n"
        + "Example goal: What time is it in Paris? Save it as a note titled paris-time.\n"
        + "Example answer: {\"steps\": [{\"tool\": \"time.get_current_time\", \"arguments\": {\"timezone\": "
        + "\"Europe/Paris\"}}, {\"tool\": \"notes.write\", \"arguments\": {\"title\": \"paris-time\", "
        + "\"text\": \"The time in Paris.\"}}]}"

    static func descriptor(_ llm: String) -> AgentDescriptor {
        llmAgentDescriptor("planner", prompt: prompt, llm: llm)
    }

    init(llm: String) {
        self.llm = llm
    }

    public func handle(_ message: AgentMessage, context: AgentContext<Planner>) async throws -> Payload {
        let input = try JSONValue(parsing: message.payload.bytes)
        var user = "Goal: \(input["goal"]?.stringValue ?? "")"
        if let changes = input["changes"]?.arrayValue, !changes.isEmpty, let previous = input["previous"] {
            user += "\nYour previous plan: \(previous.text)\nChanges requested: "
                + changes.compactMap(\.stringValue).joined(separator: "; ")
        }
        let request = LLMRequest(
            messages: [.init(role: "system", content: Self.prompt), .init(role: "user", content: user)],
            responseFormat: .init(type: "json_schema", schema: PlanCriticExecute.planSchema, name: "plan"),
            temperature: 0, maxTokens: 400, seed: 7)
        let plan = try llmReply(try await context.ask(llm, try Payload(json: request)), service: llm)
        let violations = JSONSchema(PlanCriticExecute.planSchema).violations(of: plan)
        guard violations.isEmpty else {
            throw AskError(service: "planner", code: "bad_plan",
                           message: "the model's plan breaks the schema: " + violations.prefix(3).joined(separator: "; "))
        }
        return try Payload(json: plan)
    }
}

/// Reviews a plan: each step's arguments against its tool's schema, then the LLM's verdict;
/// approves a schema-valid plan on the third round.
public actor Critic: AgentActor {
    public var state = NoState()
    let llm: String

    static let prompt = "You review a plan of tool calls for a goal. Approve it unless it clearly misses part of "
        + "the goal. Answer with JSON {\"verdict\": \"approve\" or \"revise\", \"changes\": [short requests]}."

    static func descriptor(_ llm: String) -> AgentDescriptor {
        llmAgentDescriptor("critic", prompt: prompt, llm: llm)
    }

    init(llm: String) {
        self.llm = llm
    }

    public func handle(_ message: AgentMessage, context: AgentContext<Critic>) async throws -> Payload {
        let input = try JSONValue(parsing: message.payload.bytes)
        let plan = input["plan"] ?? .null
        let changes = JSONSchema(PlanCriticExecute.planSchema).violations(of: plan)
        if !changes.isEmpty {
            return try Payload(json: JSONValue.object([
                "verdict": "revise", "changes": .array(changes.prefix(3).map { .string($0) }), "by": "rules",
            ]))
        }
        if (input["round"]?.intValue ?? 1) >= 3 {
            return try Payload(json: JSONValue.object(["verdict": "approve", "changes": [], "by": "last round"]))
        }
        let request = LLMRequest(
            messages: [.init(role: "system", content: Self.prompt),
                       .init(role: "user", content: "Goal: \(input["goal"]?.stringValue ?? "")\nPlan: \(plan.text)")],
            responseFormat: .init(type: "json_schema", schema: PlanCriticExecute.reviewSchema, name: "review"),
            temperature: 0, maxTokens: 200, seed: 7)
        var review = try llmReply(try await context.ask(llm, try Payload(json: request)), service: llm)
        guard JSONSchema(PlanCriticExecute.reviewSchema).violations(of: review).isEmpty else {
            throw AskError(service: "critic", code: "bad_review", message: "the model's review breaks the schema")
        }
        if case .object(var members) = review {
            members["by"] = "llm"
            review = .object(members)
        }
        return try Payload(json: review)
    }
}

/// Runs a plan's steps in order as `tool.<name>` asks. When one fails, the compensations of the
/// steps already done are called, newest first, and the failure is the reply.
public actor Executor: Agent {
    public static let descriptor = AgentDescriptor(name: "executor", version: "1.0")
    public var state = NoState()

    public init(id: AgentID) {}

    public func handle(_ message: AgentMessage, context: AgentContext<Executor>) async throws -> Payload {
        let input = try JSONValue(parsing: message.payload.bytes)
        var results: [JSONValue] = []
        var compensations: [JSONValue] = []
        for (index, step) in (input["plan"]?["steps"]?.arrayValue ?? []).enumerated() {
            let tool = step["tool"]?.stringValue ?? ""
            do {
                let reply = try JSONValue(parsing: try await context.ask(
                    "tool." + tool, try Payload(json: step["arguments"] ?? .object([:]))).bytes)
                results.append(["tool": .string(tool), "output": reply["output"] ?? reply])
                if let compensation = reply["compensation"] { compensations.append(compensation) }
            } catch let error as AskError {
                var undone: [String] = []
                for compensation in compensations.reversed() {
                    guard let service = compensation["service"]?.stringValue else { continue }
                    _ = try? await context.ask(service, try Payload(json: compensation["input"] ?? .object([:])))
                    undone.append(service)
                }
                // A human's or the policy's no is final: the workflow must not retry it.
                let kept: Set<String> = ["cancelled", "approval_rejected", "policy_denied"]
                throw AskError(service: "executor", code: kept.contains(error.code) ? error.code : "tool_failed",
                               message: "step \(index + 1) (\(tool)) failed: \(error.message)"
                                   + (undone.isEmpty ? "" : "; undone: " + undone.joined(separator: ", ")))
            }
        }
        return try Payload(json: JSONValue.object(["results": .array(results), "compensations": .array(compensations)]))
    }
}

/// A stand-in for the LLM gateway with scripted answers (`--model scripted`): the same request
/// and reply types, a real agent behind the router, content chosen by rules instead of a model.
/// A first plan leaves out the note, so the scripted review asks for one; the second plan has it.
public actor ScriptedModel: AgentActor {
    public struct State: AgentState {
        public var calls = 0
        public init() {}
        public mutating func apply(_ event: UsageEvent) { calls += 1 }
    }

    public var state = State()
    /// What one call costs, for budget tests.
    let costPerCall: Double

    public static func agentType(name: String = "llm.scripted", costPerCall: Double = 0) -> AgentType {
        AgentType(descriptor: AgentDescriptor(name: name, version: "scripted/1")) { _ in
            ScriptedModel(costPerCall: costPerCall)
        }
    }

    init(costPerCall: Double) {
        self.costPerCall = costPerCall
    }

    /// Shaped like the gateway's `llm.usage`, so budgets count scripted calls too.
    public struct UsageEvent: AgentEvent {
        public var type: String
        public var usage: LLMUsage
        public var model: String
        public var eventType: String { type }
    }

    public func handle(_ message: AgentMessage, context: AgentContext<ScriptedModel>) async throws -> Payload {
        let request = try message.payload.decode(LLMRequest.self)
        let user = request.messages.last?.content ?? ""
        let content: JSONValue
        switch request.responseFormat?.name {
        case "plan":
            var steps: [JSONValue] = [
                ["tool": "time.get_current_time", "arguments": ["timezone": "Asia/Tokyo"]],
                ["tool": "time.convert_time",
                 "arguments": ["source_timezone": "Europe/London", "time": "12:00", "target_timezone": "America/New_York"]],
            ]
            if user.contains("Changes requested") {
                steps.append(["tool": "notes.write",
                              "arguments": ["title": "time-check", "text": "Tokyo time and 12:00 London in New York."]])
            }
            content = ["steps": .array(steps)]
        case "review":
            content = user.contains("\"notes.write\"") ? ["verdict": "approve", "changes": []]
                : ["verdict": "revise", "changes": ["add a notes.write step that saves the answers"]]
        default:
            content = .string("scripted")
        }
        let usage = LLMUsage(promptTokens: user.utf8.count / 4, completionTokens: content.text.utf8.count / 4,
                             costUSD: costPerCall, attempts: 1)
        try context.emit(UsageEvent(type: "llm.usage", usage: usage, model: "scripted"))
        let text = content.stringValue ?? content.text
        return try Payload(json: LLMReply(content: text, finishReason: "stop", model: "scripted", usage: usage))
    }
}
