// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import Switchboard
import SwitchboardLog
import SwitchboardRouter
import SwitchboardServices
import SwitchboardWire
import SwitchboardWorkflows

/// Where embedded mode keeps its log unless told otherwise.
let defaultDataDirectory = ".switchboard"

/// Built-in agents, the workflow engine and the demo's agents, by name; `llm` is the service the
/// planner and critic ask.
func hostedTypes(_ names: [String], llm: String, notes: String) throws -> [AgentType] {
    let all = BuiltinAgents.all + [AgentType(WorkflowEngine.self)]
        + PlanCriticExecute.agentTypes(llmService: llm, notesDirectory: notes) + [ScriptedModel.agentType()]
    return try names.map { name in
        guard let type = all.first(where: { $0.descriptor.name == name }) else {
            throw ValidationError("no built-in agent \(name); known: " + all.map(\.descriptor.name).joined(separator: ", "))
        }
        return type
    }
}

/// The agent types a replay of `events` re-executes: the built-ins, the workflow engine, and the
/// demo's planner and critic configured with the LLM service their lock entries name.
func replayTypes(for events: [RecordedEvent]) -> [AgentType] {
    var types = BuiltinAgents.all + [AgentType(WorkflowEngine.self), AgentType(Executor.self), ScriptedModel.agentType()]
    let locked = Replayer.lock(in: events)
    let candidates = Set(locked.map(\.service).filter { $0.hasPrefix("llm.") } + ["llm.scripted", "llm.local"])
    for name in ["planner", "critic"] {
        let digest = locked.first { $0.service == name }?.configDigest
        let options = candidates.sorted().flatMap { PlanCriticExecute.agentTypes(llmService: $0, notesDirectory: "/nonexistent") }
            .filter { $0.descriptor.name == name }
        if let match = options.first(where: { $0.descriptor.configDigest == digest }) ?? options.first {
            types.append(match)
        }
    }
    return types
}

/// A workflow by file path or built-in name.
func loadWorkflow(_ name: String) throws -> WorkflowDefinition {
    if name == PlanCriticExecute.definition.name { return PlanCriticExecute.definition }
    do {
        return try WorkflowDefinition.load(path: name)
    } catch let error as WorkflowError {
        throw ValidationError(error.message)
    }
}

// MARK: - Operator commands through the router

/// Sends `command` to the router's `sb.control` and returns the JSON reply; an error reply is thrown.
func control(_ router: String, _ command: [String: Any]) throws -> [String: Any] {
    try reportingErrors {
        let client = try MDPClient(context: try ZMQContext(), endpoint: router)
        let body = try JSONSerialization.data(withJSONObject: command, options: [.sortedKeys])
        try client.send(service: ControlServices.control, body: [Array(body)])
        guard let reply = try client.receive(timeout: 10_000) else {
            throw WireError(.timeout, "no answer from the router at \(router) within 10 s")
        }
        let text = reply.body.last ?? []
        guard let object = try? JSONSerialization.jsonObject(with: Data(text)) as? [String: Any] else {
            throw WireError(.malformed, "the router's answer is not JSON")
        }
        if let code = object["error"] as? String {
            FileHandle.standardError.write(Data("error: \(code): \(object["message"] as? String ?? "")\n".utf8))
            throw ExitCode.failure
        }
        return object
    }
}

struct RunControlOptions: ParsableArguments {
    @Argument(help: "The run id.") var runID: String
    @Option(help: "The router's endpoint, e.g. tcp://127.0.0.1:5555.") var router: String
    @Option(help: "Why (recorded in the event).") var reason: String?

    func send(_ op: String, done: String) throws {
        var command: [String: Any] = ["op": op, "run": runID]
        command["reason"] = reason
        _ = try control(router, command)
        print("\(done) \(runID)")
    }
}

struct RunPause: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Pause a run: its next requests wait at the router (run.paused) until it is resumed.",
        discussion: "What is under way finishes; nothing new is forwarded. The pause survives a router restart.")
    @OptionGroup var options: RunControlOptions

    func run() throws {
        try options.send("pause", done: "paused")
    }
}

struct RunResume: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Resume a paused run: its held requests go on (run.resumed).")
    @OptionGroup var options: RunControlOptions

    func run() throws {
        try options.send("resume", done: "resumed")
    }
}

struct RunCancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a run (run.cancelled): its waiting and future requests fail with `cancelled`.")
    @OptionGroup var options: RunControlOptions

    func run() throws {
        try options.send("cancel", done: "cancelled")
    }
}

struct ApprovalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals", abstract: "Human approvals.", subcommands: [ApprovalsList.self])
}

struct ApprovalsList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List pending approvals: from a running router, or from a log's approvals projection.",
        discussion: "One line per approval: id, run, kind (step or policy), agent → service, title.")
    @Option(help: "Ask this router for the approvals it holds.") var router: String?
    @Option(help: "Read the log's approvals projection instead.") var data: String?
    @Flag(help: "With --data: decided approvals too.") var all = false

    func run() throws {
        var lines: [String] = []
        if let router {
            let reply = try control(router, ["op": "approvals"])
            for item in reply["approvals"] as? [[String: Any]] ?? [] {
                lines.append(Self.line(item["id"], item["runID"], item["kind"], item["agent"], item["service"],
                                       item["title"], "pending", item["details"]))
            }
        } else {
            let records = try reportingErrors {
                try ApprovalsProjection.records(in: try EventLog.openReadOnly(at: data ?? defaultDataDirectory, projections: Router.projections))
            }
            for record in records where all || record.status == "pending" {
                lines.append(Self.line(record.id, record.runID, record.kind, record.agent, record.service,
                                       record.title, record.status, record.details))
            }
        }
        print(lines.isEmpty ? "no pending approvals" : lines.joined(separator: "\n"))
    }

    static func line(_ values: Any?...) -> String {
        let text = values.map { $0.map { "\($0)" } ?? "" }
        return "\(text[0])  \(text[1])  \(text[2])  \(text[3]) → \(text[4])  \"\(text[5])\"  \(text[6])\n    details: \(text[7])"
    }
}

struct ApproveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve", abstract: "Approve a pending approval; the run continues where it stopped.")
    @Argument(help: "The approval id (see `approvals list`).") var id: String
    @Option(help: "A note recorded with the answer.") var note: String?
    @Option(help: "The router's endpoint.") var router: String

    func run() throws {
        var command: [String: Any] = ["op": "decide", "id": id, "approved": true]
        command["note"] = note
        _ = try control(router, command)
        print("approved \(id)")
    }
}

struct RejectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reject", abstract: "Reject a pending approval, with the reason recorded.")
    @Argument(help: "The approval id (see `approvals list`).") var id: String
    @Option(help: "Why (required).") var reason: String
    @Option(help: "The router's endpoint.") var router: String

    func run() throws {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason is empty") }
        _ = try control(router, ["op": "decide", "id": id, "approved": false, "reason": reason])
        print("rejected \(id)")
    }
}

// MARK: - Workflow files

struct WorkflowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow", abstract: "Check and draw workflow definitions.",
        subcommands: [WorkflowRender.self, WorkflowValidate.self])
}

struct WorkflowRender: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render", abstract: "Print a workflow's graph as a Mermaid flowchart.")
    @Argument(help: "A workflow file (JSON) or the built-in plan-critic-execute.") var file: String

    func run() throws {
        print(try loadWorkflow(file).mermaid(), terminator: "")
    }
}

struct WorkflowValidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check a workflow file; print its steps or the first problem.")
    @Argument(help: "A workflow file (JSON).") var file: String

    func run() throws {
        let definition = try loadWorkflow(file)
        print("ok: \(definition.name), \(definition.steps.count) steps, starts at \(definition.start)")
    }
}

// MARK: - Runs in the log

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs", abstract: "List runs from the run-status projection: id, state, events, last change.")
    @Option(help: "The log's data directory.") var data: String = defaultDataDirectory

    func run() throws {
        let runs = try reportingErrors { try EventLog.openReadOnly(at: data).runs() }
        if runs.isEmpty { print("no runs in \(data)") }
        for run in runs.sorted(by: { $0.firstPosition < $1.firstPosition }) {
            print("\(run.runID)  \(run.state)  \(run.eventCount) events  positions \(run.firstPosition)…\(run.lastPosition)"
                  + "  last \(Self.time(run.lastTimestamp))")
        }
    }

    static func time(_ timestamp: Timestamp) -> String {
        let date = Date(timeIntervalSince1970: Double(timestamp.nanosecondsSinceEpoch) / 1e9)
        return ISO8601DateFormatter().string(from: date)
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print a run: status, timeline, lock, usage and approvals.")
    @Argument(help: "The run id.") var runID: String
    @Option(help: "The log's data directory.") var data: String = defaultDataDirectory
    @Flag(help: "Every event in the timeline, not only the run's own steps and decisions.") var all = false

    static let timelineTypes: Set<String> = [
        "run.started", "run.completed", "run.failed", "run.paused", "run.resumed", "run.cancelled", "step.started",
        "step.completed", "step.failed", "step.exhausted", "step.compensated", "compensation.failed", "breaker.opened",
        "breaker.half_opened", "breaker.closed", "approval.requested", "approval.decided", "policy.decided",
        "request.failed", "tool.executed", "llm.usage", "llm.failed",
    ]

    func run() throws {
        try reportingErrors {
            let log = try EventLog.openReadOnly(at: data, projections: Router.projections)
            guard let status = try log.runStatus(runID) else {
                throw EventLogError(.notFound, "the log in \(data) has no run \(runID)")
            }
            let events = try log.events(inRun: runID)
            print("run \(runID): \(status.state), \(status.eventCount) events, "
                  + "\(RunsCommand.time(status.firstTimestamp)) … \(RunsCommand.time(status.lastTimestamp))")
            print("timeline:")
            let source = log.cloudEventSource
            for event in events where all || Self.timelineTypes.contains(event.type) {
                print("  " + RunStart.line(event.position, event.cloudEventJSON(source: source)))
            }
            print("lock:")
            for entry in Replayer.lock(in: events) {
                print("  \(entry.service)  version \(entry.version)  config \(entry.configDigest.isEmpty ? "-" : entry.configDigest)")
            }
            let usage = try UsageTotals.ofRun(runID, in: log)
            print("usage: \(usage.calls) LLM calls, \(usage.promptTokens) prompt + \(usage.completionTokens) completion "
                  + "tokens, $\(String(format: "%.6f", usage.costUSD))")
            let approvals = try ApprovalsProjection.records(in: log).filter { $0.runID == runID }
            if !approvals.isEmpty {
                print("approvals:")
                for record in approvals {
                    print("  \(record.id)  \(record.status)  \(record.kind)  \(record.agent) → \(record.service)  "
                          + "\"\(record.title)\"" + (record.note.map { "  note: \($0)" } ?? "")
                          + (record.reason.map { "  reason: \($0)" } ?? ""))
                }
            }
        }
    }
}
