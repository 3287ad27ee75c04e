// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import TestSupport
import Switchboard
import SwitchboardLog
import SwitchboardRouter
import SwitchboardServices
import SwitchboardWire
@testable import SwitchboardWorkflows

/// Fails its first two calls per run with `unavailable`, then answers `{"ok": true}`.
actor Recovering: Agent {
    static let descriptor = AgentDescriptor(name: "recovering", version: "1.0")
    struct Called: AgentEvent {
        var eventType: String { "recovering.called" }
    }
    struct State: AgentState {
        var calls = 0
        mutating func apply(_ event: Called) { calls += 1 }
    }
    var state = State()
    init(id: AgentID) {}
    func handle(_ message: AgentMessage, context: AgentContext<Recovering>) async throws -> Payload {
        try context.emit(Called())
        guard state.calls > 2 else { throw AskError(service: "recovering", code: "unavailable", message: "call \(state.calls)") }
        return Payload(text: #"{"ok":true}"#)
    }
}

/// Always fails with `boom`.
actor Broken: Agent {
    static let descriptor = AgentDescriptor(name: "broken", version: "1.0")
    var state = NoState()
    init(id: AgentID) {}
    func handle(_ message: AgentMessage, context: AgentContext<Broken>) async throws -> Payload {
        throw AskError(service: "broken", code: "boom", message: "broken on purpose")
    }
}

let testTypes = BuiltinAgents.all + [AgentType(WorkflowEngine.self), AgentType(Recovering.self), AgentType(Broken.self),
                                     ScriptedModel.agentType(costPerCall: 0.01)]

func workflow(_ json: String) throws -> WorkflowDefinition {
    try WorkflowDefinition.load(json: Array(json.utf8))
}

/// A router with `policy` on a loopback TCP port and a host of `types`, the log in `directory`.
func system(_ directory: String, policy: Policy? = nil, endpoint: String = "tcp://127.0.0.1:*",
            types: [AgentType] = testTypes) throws -> Embedded {
    let router = try EmbeddedRouter(
        directory: directory,
        configuration: RouterConfiguration(endpoint: endpoint, heartbeatInterval: 500, policy: policy),
        durability: .none)
    let host = try AgentHost(types: types, configuration: .init(endpoint: router.endpoint, heartbeatInterval: 500))
    return Embedded(router: router, host: host)
}

/// Sends a JSON command to `sb.control` and returns the reply.
func control(_ endpoint: String, _ command: JSONValue) throws -> JSONValue {
    let client = try MDPClient(context: try ZMQContext(), endpoint: endpoint)
    try client.send(service: ControlServices.control, body: [command.bytes])
    guard let reply = try client.receive(timeout: 10_000) else { throw TestFailure("sb.control gave no answer") }
    return try JSONValue(parsing: reply.body.last ?? [])
}

/// Starts runs of `definition` with `inputs`; `during` runs on the client's thread before results are awaited.
func runWorkflows(_ system: Embedded, _ definition: WorkflowDefinition, inputs: [JSONValue],
                  during: @escaping @Sendable ([String]) throws -> Void = { _ in }) async throws -> [RunClient.Result] {
    let endpoint = system.router.endpoint
    let services = system.host.serviceNames
    let payloads = try inputs.map { try WorkflowEngine.startMessage(definition, input: $0) }
    return try await onThread {
        let client = try RunClient(context: try ZMQContext(), endpoint: endpoint)
        for name in services where try !client.waitForService(name, timeout: 120_000) {
            throw TestFailure("\(name) did not register")
        }
        let ids = try payloads.map { try client.start("workflow", input: $0) }
        try during(ids)
        var results: [RunClient.Result] = []
        while results.count < ids.count, let result = try client.nextResult(timeout: 60_000) { results.append(result) }
        return ids.compactMap { id in results.first { $0.runID == id } }
    }
}

func events(_ log: EventLog, _ runID: String, _ type: String? = nil) throws -> [RecordedEvent] {
    try log.events(inRun: runID).filter { type == nil || $0.type == type }
}

func json(_ event: RecordedEvent) -> JSONValue {
    (try? JSONValue(parsing: event.jsonPayload)) ?? .null
}

/// Polls until `condition` holds or `seconds` pass.
func eventually(_ seconds: Double = 30, _ condition: () throws -> Bool) throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}

@Suite(.serialized) struct WorkflowTests {
    static let shapes = """
        {"name": "shapes", "start": "fan",
         "steps": {
           "fan": {"parallel": ["left", "right"], "next": "count"},
           "left": {"ask": "echo", "input": {"side": "left", "goal": "$input.goal"}},
           "right": {"ask": "echo", "input": {"side": "right", "text": "goal is ${input.goal}"}},
           "count": {"ask": "counter", "input": {"add": 1}, "maxVisits": 5,
                     "next": [{"when": {"path": "$steps.count.total", "equals": 3}, "to": "pause"}, {"to": "count"}]},
           "pause": {"wait": {"delayMs": 50}}
         },
         "output": {"left": "$steps.left.side", "text": "$steps.right.text", "sum": "$steps.count.total",
                    "visits": "$visits.count", "missing": "$steps.nothing.here"}}
        """

    @Test func graphShapesRunAndReplayIdentical() async throws {
        try await withTemporaryDirectory { directory in
            let system = try system(directory)
            let definition = try workflow(Self.shapes)
            let results = try await system.serving { system in
                try await runWorkflows(system, definition, inputs: [["goal": "g1"]])
            }
            let result = try #require(results.first)
            #expect(result.error == nil, "\(String(describing: result.error))")
            let output = try JSONValue(parsing: result.payload.bytes)
            #expect(output == ["left": "left", "text": "goal is g1", "sum": 3, "visits": 3, "missing": nil])
            let log = system.router.router.log
            let steps = try events(log, result.runID, "step.completed").compactMap { json($0)["step"]?.stringValue }
            #expect(Set(steps.prefix(2)) == ["left", "right"])
            #expect(Array(steps.dropFirst(2)) == ["fan", "count", "count", "count", "pause"])
            #expect(try events(log, result.runID, "run.completed").count == 1)
            let report = try await Replayer.replay(run: result.runID, log: log, types: testTypes)
            #expect(report.divergence == nil && report.messagesReplayed > 0, "\(String(describing: report.divergence))")
            try system.router.stop()
        }
    }

    @Test func loopBoundsFailOrTakeTheirExit() async throws {
        try await withTemporaryDirectory { directory in
            let system = try system(directory)
            let endless = try workflow("""
                {"name": "endless", "start": "again",
                 "steps": {"again": {"ask": "echo", "input": {}, "next": "again", "maxVisits": 2}}}
                """)
            let exit = try workflow("""
                {"name": "exit", "start": "again",
                 "steps": {"again": {"ask": "echo", "input": {}, "next": "again", "maxVisits": 2, "onExhausted": "done"},
                           "done": {"ask": "echo", "input": {"done": true}}}}
                """)
            let (failed, exited) = try await system.serving { system in
                (try await runWorkflows(system, endless, inputs: [[:]]), try await runWorkflows(system, exit, inputs: [[:]]))
            }
            #expect(failed.first?.error?.code == "step_failed")
            #expect(failed.first?.error?.message.contains("loop_bound") == true)
            #expect(try JSONValue(parsing: try #require(exited.first).payload.bytes) == ["done": true])
            try system.router.stop()
        }
    }

    @Test func definitionsAreCheckedAndRendered() throws {
        #expect(throws: WorkflowError.self) {
            try workflow(#"{"name": "x", "start": "a", "steps": {"a": {"ask": "echo", "next": "nowhere"}}}"#)
        }
        #expect(throws: WorkflowError.self) {
            try workflow(#"{"name": "x", "start": "a", "steps": {"a": {"ask": "echo", "wait": {"delayMs": 1}}}}"#)
        }
        #expect(throws: WorkflowError.self) {
            try workflow(#"{"name": "x", "start": "a", "steps": {"a": {"parallel": ["b"]}, "b": {"wait": {"delayMs": 1}}}}"#)
        }
        let chart = try workflow(Self.shapes).mermaid()
        #expect(chart.hasPrefix("flowchart TD\n"))
        #expect(chart.contains("s_fan --> s_left"))
        #expect(chart.contains("s_fan_join --> s_count"))
        #expect(chart.contains(#"s_count -->|"$steps.count.total == 3"| s_pause"#))
        #expect(chart.contains("s_pause --> finish"))
        let demo = PlanCriticExecute.definition.mermaid()
        #expect(demo.contains(#"s_review -->|"$steps.review.verdict == \"approve\""| s_execute"#)
                || demo.contains("s_review -->|\"$steps.review.verdict == #quot;approve#quot;\"| s_execute"))
    }

    @Test func severalApprovalsPendingAnsweredOutOfOrder() async throws {
        try await withTemporaryDirectory { directory in
            let system = try system(directory)
            let definition = try workflow("""
                {"name": "approve", "start": "ask",
                 "steps": {"ask": {"approval": {"title": "ship ${input.name}?", "details": {"name": "$input.name"}},
                                   "next": "ship"},
                           "ship": {"ask": "echo", "input": {"shipped": "$input.name", "note": "$steps.ask.note"}}}}
                """)
            let endpoint = system.router.endpoint
            let results = try await system.serving { system in
                try await runWorkflows(system, definition, inputs: [["name": "a"], ["name": "b"], ["name": "c"]]) { ids in
                    var pending: [JSONValue] = []
                    _ = try eventually {
                        pending = try control(endpoint, ["op": "approvals"])["approvals"]?.arrayValue ?? []
                        return pending.count == 3
                    }
                    guard pending.count == 3 else { throw TestFailure("expected 3 pending approvals, saw \(pending)") }
                    func id(_ run: String) throws -> String {
                        guard let id = pending.first(where: { $0["runID"]?.stringValue == run })?["id"]?.stringValue
                        else { throw TestFailure("no approval for \(run)") }
                        return id
                    }
                    // Newest first, one rejected; a second answer to the same id is refused.
                    let third = try control(endpoint, ["op": "decide", "id": .string(try id(ids[2])), "approved": true,
                                                       "note": "ok c"])
                    guard third["ok"] == true else { throw TestFailure("approve failed: \(third)") }
                    let again = try control(endpoint, ["op": "decide", "id": .string(try id(ids[2])), "approved": true])
                    guard again["error"] == "not_found" else { throw TestFailure("second answer accepted: \(again)") }
                    let noReason = try control(endpoint, ["op": "decide", "id": .string(try id(ids[0])), "approved": false])
                    guard noReason["error"] == "bad_request" else { throw TestFailure("reject without reason: \(noReason)") }
                    _ = try control(endpoint, ["op": "decide", "id": .string(try id(ids[0])), "approved": false,
                                               "reason": "not a"])
                    _ = try control(endpoint, ["op": "decide", "id": .string(try id(ids[1])), "approved": true])
                }
            }
            #expect(results.count == 3)
            #expect(results[0].error?.code == "step_failed" && results[0].error?.message.contains("not a") == true)
            #expect(results[1].error == nil)
            #expect(try JSONValue(parsing: results[2].payload.bytes) == ["shipped": "c", "note": "ok c"])
            let log = system.router.router.log
            let records = try ApprovalsProjection.records(in: log)
            #expect(Set(records.map(\.status)) == ["approved", "rejected"])
            #expect(records.first { $0.runID == results[0].runID }?.reason == "not a")
            #expect(records.first { $0.runID == results[2].runID }?.details == #"{"name":"c"}"#)
            for result in results {
                let report = try await Replayer.replay(run: result.runID, log: log, types: testTypes)
                #expect(report.divergence == nil)
            }
            try system.router.stop()
        }
    }

    @Test func policyDenialAndBudget() async throws {
        try await withTemporaryDirectory { directory in
            let policy = Policy(rules: [
                .init(name: "no-counting", agent: "workflow", service: "counter", decision: .deny, reason: "counting is off"),
                .init(name: "llm-budget", service: "llm.*", decision: .allow, maxCostPerRun: 0.015),
            ])
            let system = try system(directory, policy: policy)
            let counting = try workflow(#"{"name": "c", "start": "a", "steps": {"a": {"ask": "counter", "input": {}}}}"#)
            let llm: JSONValue = ["messages": [["role": "user", "content": "hi"]]]
            let spending = try workflow("""
                {"name": "s", "start": "a",
                 "steps": {"a": {"ask": "llm.scripted", "input": \(llm.text), "next": "b"},
                           "b": {"ask": "llm.scripted", "input": \(llm.text), "next": "c"},
                           "c": {"ask": "llm.scripted", "input": \(llm.text)}}}
                """)
            let (denied, spent) = try await system.serving { system in
                (try await runWorkflows(system, counting, inputs: [[:]]), try await runWorkflows(system, spending, inputs: [[:]]))
            }
            let deniedRun = try #require(denied.first)
            #expect(deniedRun.error?.message.contains("policy_denied") == true)
            #expect(deniedRun.error?.message.contains("counting is off") == true)
            let log = system.router.router.log
            let decisions = try events(log, deniedRun.runID, "policy.decided").map(json)
            #expect(decisions.contains { $0["decision"] == "deny" && $0["rule"] == "no-counting" && $0["agent"] == "workflow" })
            // Nothing reached the counter: no lock entry for it, no emitted counter event.
            #expect(try events(log, deniedRun.runID).allSatisfy { $0.type != "counter.added" })
            #expect(Replayer.lock(in: try log.events(inRun: deniedRun.runID)).allSatisfy { $0.service != "counter" })

            let spentRun = try #require(spent.first)
            #expect(spentRun.error?.message.contains("budget exceeded") == true, "\(String(describing: spentRun.error))")
            #expect(try events(log, spentRun.runID, "llm.usage").count == 2)
            #expect(try UsageTotals.ofRun(spentRun.runID, in: log).costMicroUSD == 20_000)
            try system.router.stop()
        }
    }

    /// The cool-down is long beside the first retry's 60 ms backoff, so that a loaded machine's
    /// stall does not carry that retry past it (it half-opened at once in one CI run); the ninth
    /// attempt, 1.9 s after the breaker opened, finds it over.
    @Test func breakerOpensThenHalfOpensAfterCoolDownAndCloses() async throws {
        try await withTemporaryDirectory { directory in
            let system = try system(directory)
            let definition = try workflow("""
                {"name": "breaker", "start": "call", "breaker": {"failures": 2, "coolDownMs": 1500},
                 "steps": {"call": {"ask": "recovering", "input": {},
                                    "retry": {"attempts": 12, "backoffMs": 40, "multiplier": 1.5}}}}
                """)
            let results = try await system.serving { system in try await runWorkflows(system, definition, inputs: [[:]]) }
            let result = try #require(results.first)
            #expect(result.error == nil, "\(String(describing: result.error))")
            let log = system.router.router.log
            let sequence = try events(log, result.runID).compactMap { event -> String? in
                if event.type.hasPrefix("breaker.") { return event.type }
                if event.type == "step.failed" { return json(event)["code"]?.stringValue }
                return nil
            }
            #expect(Array(sequence.prefix(3)) == ["unavailable", "unavailable", "breaker.opened"])
            let half = try #require(sequence.firstIndex(of: "breaker.half_opened"))
            #expect(sequence[3..<half].allSatisfy { $0 == "circuit_open" } && half > 3, "\(sequence)")
            #expect(sequence.last == "breaker.closed")
            // Calls failed fast while open: the service saw three calls only.
            #expect(try events(log, result.runID, "recovering.called").count == 3)
            let opened = try #require(try events(log, result.runID, "breaker.opened").first.map(json)?["at"]?.intValue)
            let halfOpened = try #require(try events(log, result.runID, "breaker.half_opened").first.map(json)?["at"]?.intValue)
            #expect(halfOpened - opened >= 1_500_000_000)
            let report = try await Replayer.replay(run: result.runID, log: log, types: testTypes)
            #expect(report.divergence == nil)
            try system.router.stop()
        }
    }

    @Test func waitStrategyAsksAHumanToRetryAFailedStep() async throws {
        try await withTemporaryDirectory { directory in
            let system = try system(directory)
            let definition = try workflow("""
                {"name": "wait", "start": "call", "onFailure": "wait",
                 "steps": {"call": {"ask": "recovering", "input": {}}}}
                """)
            let endpoint = system.router.endpoint
            let results = try await system.serving { system in
                try await runWorkflows(system, definition, inputs: [[:]]) { _ in
                    // Two failures, two approvals to retry; the third call succeeds.
                    var answered: Set<String> = []
                    for _ in 0..<2 {
                        var id: String?
                        _ = try eventually {
                            let pending = try control(endpoint, ["op": "approvals"])["approvals"]?.arrayValue ?? []
                            id = pending.compactMap { $0["id"]?.stringValue }.first { !answered.contains($0) }
                            return id != nil
                        }
                        guard let id else { throw TestFailure("no approval to retry the step") }
                        answered.insert(id)
                        _ = try control(endpoint, ["op": "decide", "id": .string(id), "approved": true])
                    }
                }
            }
            let result = try #require(results.first)
            #expect(result.error == nil, "\(String(describing: result.error))")
            let log = system.router.router.log
            #expect(try events(log, result.runID, "recovering.called").count == 3)
            #expect(try events(log, result.runID, "approval.decided").count == 2)
            let report = try await Replayer.replay(run: result.runID, log: log, types: testTypes)
            #expect(report.divergence == nil)
            try system.router.stop()
        }
    }

    @Test func rollbackCallsCompensationsNewestFirst() async throws {
        try await withTemporaryDirectory { directory in
            let system = try system(directory)
            let definition = try workflow("""
                {"name": "rollback", "start": "a", "onFailure": "rollback",
                 "steps": {"a": {"ask": "echo", "input": {"do": "a"}, "next": "b",
                                 "compensate": {"ask": "echo", "input": {"undo": "$steps.a.do"}}},
                           "b": {"ask": "echo", "input": {"do": "b"}, "next": "c",
                                 "compensate": {"ask": "echo", "input": {"undo": "$steps.b.do"}}},
                           "c": {"ask": "broken", "input": {}}}}
                """)
            let results = try await system.serving { system in try await runWorkflows(system, definition, inputs: [[:]]) }
            let result = try #require(results.first)
            #expect(result.error?.code == "step_failed")
            #expect(result.error?.message.contains("rolled back b, a") == true, "\(String(describing: result.error))")
            let log = system.router.router.log
            let asked = try events(log, result.runID, "request.received").filter { json($0)["service"] == "echo" }
                .compactMap { event -> String? in
                    let frames = json(event)["body"]?.arrayValue?.compactMap(\.stringValue) ?? []
                    return frames.compactMap { Data(base64Encoded: $0) }
                        .map { String(decoding: $0, as: UTF8.self) }.last { $0.hasPrefix("{") }
                }
            #expect(asked == [#"{"do":"a"}"#, #"{"do":"b"}"#, #"{"undo":"b"}"#, #"{"undo":"a"}"#])
            #expect(try events(log, result.runID, "step.compensated").compactMap { json($0)["step"]?.stringValue } == ["b", "a"])
            let report = try await Replayer.replay(run: result.runID, log: log, types: testTypes)
            #expect(report.divergence == nil)
            try system.router.stop()
        }
    }
}

@Suite(.serialized) struct WorkflowRestartTests {
    /// A free loopback port (bound and released).
    static func freePort() throws -> Int {
        let socket = try ZMQSocket(try ZMQContext(), type: .router)
        try socket.bind("tcp://127.0.0.1:*")
        return Int(socket.lastEndpoint.split(separator: ":").last ?? "") ?? 0
    }

    /// Runs a router on `directory` while `body` runs, then stops it and closes its log.
    /// `body` blocks (sockets, polling): it runs on a thread of its own, never on the test pool.
    static func firstRouter(_ directory: String, _ endpoint: String,
                            _ body: @escaping @Sendable (EventLog) throws -> String) async throws -> String
    {
        let router = try EmbeddedRouter(
            directory: directory, configuration: RouterConfiguration(endpoint: endpoint, heartbeatInterval: 500),
            durability: .none)
        // The thread may outlive the await; it holds the box, not the log, which must close on return.
        let log = Mutex<EventLog?>(router.router.log)
        let runID = try await onThread { try body(try #require(log.withLock { $0 })) }
        log.withLock { $0 = nil }
        try router.stop()
        return runID
    }

    /// Starts a run of `definition` without waiting for its result; returns the run id.
    static func start(_ endpoint: String, _ definition: WorkflowDefinition, services: [String]) throws -> String {
        let payload = try WorkflowEngine.startMessage(definition, input: [:])
        let client = try RunClient(context: try ZMQContext(), endpoint: endpoint)
        for name in services where try !client.waitForService(name, timeout: 120_000) {
            throw TestFailure("\(name) did not register")
        }
        let runID = try client.start("workflow", input: payload)
        // Keep the client until the request is surely sent.
        usleep(200_000)
        return runID
    }

    @Test func pauseRouterRestartResume() async throws {
        try await withTemporaryDirectory { directory in
            let endpoint = "tcp://127.0.0.1:\(try Self.freePort())"
            let definition = try workflow("""
                {"name": "paused", "start": "gate",
                 "steps": {"gate": {"approval": {"title": "go?"}, "next": "work"},
                           "work": {"ask": "echo", "input": {"worked": true}}}}
                """)
            let host = try AgentHost(types: testTypes, configuration: .init(endpoint: endpoint, heartbeatInterval: 500))
            let hostTask = Task { await host.run() }
            let runID = try await Self.firstRouter(directory, endpoint) { log in
                let runID = try Self.start(endpoint, definition, services: ["workflow", "echo"])
                #expect(try eventually { try !events(log, runID, "approval.requested").isEmpty })
                let approval = try #require(try events(log, runID, "approval.requested").first.map(json)?["id"]?.stringValue)
                #expect(try control(endpoint, ["op": "pause", "run": .string(runID)])["ok"] == true)
                #expect(try control(endpoint, ["op": "decide", "id": .string(approval), "approved": true])["ok"] == true)
                // The approval answer reaches the workflow; its next ask waits at the router.
                #expect(try eventually { try events(log, runID, "request.received").contains { json($0)["service"] == "echo" } })
                return runID
            }

            let second = try EmbeddedRouter(
                directory: directory, configuration: RouterConfiguration(endpoint: endpoint, heartbeatInterval: 500),
                durability: .none)
            let log2 = second.router.log
            #expect(try log2.runStatus(runID)?.state == .paused)
            try await onThread { () throws -> Void in
                usleep(1_500_000)
                #expect(try events(log2, runID, "reply.final").allSatisfy { json($0)["service"] != "echo" })
                #expect(try control(endpoint, ["op": "resume", "run": .string(runID)])["ok"] == true)
                #expect(try eventually(60) { try log2.runStatus(runID)?.state == .completed })
                #expect(try events(log2, runID, "run.resumed").count == 1)
                #expect(try control(endpoint, ["op": "pause", "run": .string(runID)])["error"] == "conflict")
            }
            await host.shutdown()
            _ = await hostTask.value
            let report = try await Replayer.replay(run: runID, log: log2, types: testTypes)
            #expect(report.divergence == nil)
            try second.stop()
        }
    }

    @Test func timerFiresAfterRouterRestart() async throws {
        try await withTemporaryDirectory { directory in
            let endpoint = "tcp://127.0.0.1:\(try Self.freePort())"
            let definition = try workflow("""
                {"name": "timer", "start": "sleep",
                 "steps": {"sleep": {"wait": {"delayMs": 2500}, "next": "after"},
                           "after": {"ask": "echo", "input": {"woke": true}}}}
                """)
            let host = try AgentHost(types: testTypes, configuration: .init(endpoint: endpoint, heartbeatInterval: 500))
            let hostTask = Task { await host.run() }
            let runID = try await Self.firstRouter(directory, endpoint) { log in
                let runID = try Self.start(endpoint, definition, services: ["workflow", "echo"])
                #expect(try eventually { try events(log, runID, "request.received").contains { json($0)["service"] == "sb.timer" } })
                return runID
            }
            let second = try EmbeddedRouter(
                directory: directory, configuration: RouterConfiguration(endpoint: endpoint, heartbeatInterval: 500),
                durability: .none)
            let log2 = second.router.log
            #expect(try await onThread { try eventually(60) { try log2.runStatus(runID)?.state == .completed } })
            let fired = try #require(try events(log2, runID, "reply.final").first { json($0)["service"] == "sb.timer" })
            let body = json(fired)["body"]?.arrayValue?.compactMap(\.stringValue).compactMap { Data(base64Encoded: $0) }
                .map { String(decoding: $0, as: UTF8.self) }.last { $0.hasPrefix("{") } ?? ""
            let reply = try JSONValue(parsing: Array(body.utf8))
            let firedAt = try #require(reply["firedAt"]?.intValue)
            let dueAt = try #require(reply["dueAt"]?.intValue)
            #expect(firedAt >= dueAt)
            let requested = try #require(try events(log2, runID, "request.received").first { json($0)["service"] == "sb.timer" })
            #expect(dueAt == requested.timestamp.nanosecondsSinceEpoch + 2_500_000_000)
            #expect(try events(log2, runID, "router.started").isEmpty)
            await host.shutdown()
            _ = await hostTask.value
            let report = try await Replayer.replay(run: runID, log: log2, types: testTypes)
            #expect(report.divergence == nil)
            try second.stop()
        }
    }
}
