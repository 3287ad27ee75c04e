// SPDX-License-Identifier: Apache-2.0
public import Switchboard
public import SwitchboardServices
import SwitchboardRouter

/// Runs workflow definitions: the orchestrator agent `workflow`, one instance per run.
///
/// The run's first message is `{"workflow": definition, "input": …}`, so the log holds the graph
/// the run followed and a replay needs nothing else. Every wait goes through the router: retry
/// back-off and breaker clocks are `sb.timer` asks, approvals are `sb.approval` asks, so a
/// re-execution takes them from the log.
public actor WorkflowEngine: Agent {
    public static let descriptor = AgentDescriptor(name: "workflow", version: "1.0")
    public var state = WorkflowState()

    public init(id: AgentID) {}

    /// The first message of a run of `definition`.
    public static func startMessage(_ definition: WorkflowDefinition, input: JSONValue) throws -> Payload {
        try Payload(json: JSONValue.object(["workflow": try JSONValue(encoding: definition), "input": input]))
    }

    private struct Start: Decodable {
        var workflow: WorkflowDefinition
        var input: JSONValue?
    }

    public func handle(_ message: AgentMessage, context: AgentContext<WorkflowEngine>) async throws -> Payload {
        let start: Start
        do {
            start = try message.payload.decode(Start.self)
            try start.workflow.validate()
        } catch let error as WorkflowError {
            throw AskError(service: Self.descriptor.name, code: "invalid_workflow", message: error.message)
        } catch {
            throw AskError(service: Self.descriptor.name, code: "invalid_workflow",
                           message: "the first message must be {\"workflow\": definition, \"input\": …}: "
                               + DecodingProblem.describe(error))
        }
        let execution = WorkflowExecution(definition: start.workflow, input: start.input ?? .object([:]),
                                          context: context)
        return try Payload(json: try await execution.run())
    }
}

/// A workflow run's event: `run.started`, `step.started`, `step.completed`, `step.failed`,
/// `step.exhausted`, `breaker.opened`, `breaker.half_opened`, `breaker.closed`,
/// `step.compensated`, `compensation.failed`, `run.completed`, `run.failed`.
public struct WorkflowEvent: AgentEvent, Hashable {
    public var type: String
    public var workflow: String?
    public var step: String?
    public var service: String?
    public var attempt: Int?
    public var result: JSONValue?
    public var code: String?
    public var error: String?
    /// Logged time (ns since the epoch) for breaker transitions.
    public var at: Int64?

    public var eventType: String { type }

    init(_ type: String, workflow: String? = nil, step: String? = nil, service: String? = nil, attempt: Int? = nil,
         result: JSONValue? = nil, code: String? = nil, error: String? = nil, at: Int64? = nil) {
        self.type = type
        self.workflow = workflow
        self.step = step
        self.service = service
        self.attempt = attempt
        self.result = result
        self.code = code
        self.error = error
        self.at = at
    }
}

/// Where a workflow run stands.
public struct WorkflowState: AgentState {
    public var status = "new"
    public var completedSteps: [String] = []
    /// Service → `open` or `half_open`; closed circuits are absent.
    public var breakers: [String: String] = [:]

    public init() {}

    public mutating func apply(_ event: WorkflowEvent) {
        switch event.type {
        case "run.started": status = "running"
        case "run.completed": status = "completed"
        case "run.failed": status = "failed"
        case "step.completed": completedSteps.append(event.step ?? "")
        case "breaker.opened": breakers[event.service ?? ""] = "open"
        case "breaker.half_opened": breakers[event.service ?? ""] = "half_open"
        case "breaker.closed": breakers[event.service ?? ""] = nil
        default: break
        }
    }
}

/// One execution of a run's handler: the walk through the graph.
final class WorkflowExecution {
    private let definition: WorkflowDefinition
    private let context: AgentContext<WorkflowEngine>
    private var scope: TemplateScope
    private var visits: [String: Int] = [:]
    private var completed: [String] = []
    private var breakers: [String: Breaker] = [:]
    private var last: JSONValue = .null

    private struct Breaker {
        var failures = 0
        var openedAt: Int64?
        var halfOpen = false
    }

    /// A step that failed for good.
    private struct StepFailure: Error {
        var step: String
        var error: AskError
    }

    /// A human rejected an approval step.
    private struct Rejected: Error {
        var reason: String
    }

    /// Codes a retry cannot fix.
    static let finalCodes: Set<String> = [
        "policy_denied", "approval_rejected", "cancelled", "invalid_input", "invalid_request", "bad_request",
        "invalid_workflow", "step_failed",
    ]
    /// Codes that say nothing about the service's health.
    static let notTheServices: Set<String> = ["policy_denied", "approval_rejected", "cancelled", "circuit_open"]
    /// Visits of one step when it sets no bound.
    static let defaultVisits = 10
    static let maximumTransitions = 10_000

    init(definition: WorkflowDefinition, input: JSONValue, context: AgentContext<WorkflowEngine>) {
        self.definition = definition
        self.context = context
        scope = TemplateScope(input: input, steps: [:], runID: context.runID)
    }

    private func emit(_ event: WorkflowEvent) throws {
        try context.emit(event)
    }

    func run() async throws -> JSONValue {
        try emit(WorkflowEvent("run.started", workflow: definition.name, result: .string(definition.version ?? "")))
        var current = definition.start
        var transitions = 0
        while current != WorkflowDefinition.end {
            transitions += 1
            guard transitions <= Self.maximumTransitions, let step = definition.steps[current] else {
                throw try await fail(StepFailure(step: current, error: AskError(
                    service: "workflow", code: "loop_bound",
                    message: "more than \(Self.maximumTransitions) steps taken")))
            }
            visits[current, default: 0] += 1
            scope.visits[current] = visits[current]
            let bound = step.maxVisits ?? Self.defaultVisits
            if visits[current, default: 0] > bound {
                try emit(WorkflowEvent("step.exhausted", step: current, attempt: bound))
                if let target = step.onExhausted {
                    current = target
                    continue
                }
                throw try await fail(StepFailure(step: current, error: AskError(
                    service: "workflow", code: "loop_bound", message: "step \(current) was reached \(bound) times")))
            }
            do {
                let result = try await run(current, step)
                scope.steps[current] = result
                last = result
                completed.append(current)
                try emit(WorkflowEvent("step.completed", step: current, result: result))
                current = next(after: step)
            } catch let rejection as Rejected {
                guard let target = step.onReject else {
                    throw try await fail(StepFailure(step: current, error: AskError(
                        service: ControlServices.approval, code: "approval_rejected",
                        message: "rejected: \(rejection.reason)")))
                }
                scope.steps[current] = .object(["approved": false, "reason": .string(rejection.reason)])
                current = target
            } catch let failure as StepFailure {
                if failure.error.code == "cancelled" { throw failure.error }
                if definition.onFailure == .wait {
                    let title = "Step \(current) failed (\(failure.error.code)): approve to retry it, reject to stop"
                    let answer: (approved: Bool, reason: String, reply: JSONValue)
                    do {
                        answer = try await askApproval(title: title, details: .object([
                            "step": .string(current), "code": .string(failure.error.code),
                            "message": .string(failure.error.message),
                        ]), step: current)
                    } catch let waited as StepFailure {
                        if waited.error.code == "cancelled" { throw waited.error }
                        throw try await fail(waited)
                    }
                    if answer.approved {
                        visits[current, default: 1] -= 1
                        continue
                    }
                }
                throw try await fail(failure)
            }
        }
        let output = definition.output.map(scope.resolve) ?? last
        try emit(WorkflowEvent("run.completed", workflow: definition.name, result: output))
        return output
    }

    /// Rolls back when asked to, records the failure, and gives the run's error reply.
    private func fail(_ failure: StepFailure) async throws -> AskError {
        var message = "step \(failure.step) failed: \(failure.error.service) answered \(failure.error.code): "
            + failure.error.message
        if definition.onFailure == .rollback {
            let undone = try await rollback()
            message += undone.isEmpty ? "; nothing to roll back"
                : "; rolled back " + undone.joined(separator: ", ")
        }
        try emit(WorkflowEvent("run.failed", workflow: definition.name, step: failure.step, code: failure.error.code,
                               error: message))
        return AskError(service: "workflow", code: "step_failed", message: message)
    }

    private func next(after step: WorkflowDefinition.Step) -> String {
        switch step.next {
        case .step(let name): return name
        case .edges(let edges):
            return edges.first { $0.when.map(scope.holds) ?? true }?.to ?? WorkflowDefinition.end
        case nil: return WorkflowDefinition.end
        }
    }

    private func run(_ name: String, _ step: WorkflowDefinition.Step) async throws -> JSONValue {
        if let service = step.ask {
            return try await call(name, service, input: scope.resolve(step.input ?? .object([:])), step.retry)
        }
        if let branches = step.parallel {
            return try await parallel(branches)
        }
        if let approval = step.approval {
            let title = scope.resolve(.string(approval.title)).stringValue ?? approval.title
            let answer = try await askApproval(title: title, details: scope.resolve(approval.details ?? .null), step: name)
            guard answer.approved else { throw Rejected(reason: answer.reason) }
            return answer.reply
        }
        let delay = step.wait?.delayMs ?? 0
        do {
            return try JSONValue(parsing: try await context.ask(ControlServices.timer,
                                                                try Payload(json: ["delayMs": delay])).bytes)
        } catch let error as AskError {
            throw StepFailure(step: name, error: error)
        }
    }

    private func askApproval(title: String, details: JSONValue, step: String) async throws
        -> (approved: Bool, reason: String, reply: JSONValue)
    {
        let reply: JSONValue
        do {
            reply = try JSONValue(parsing: try await context.ask(
                ControlServices.approval,
                try Payload(json: JSONValue.object(["title": .string(title), "details": details]))).bytes)
        } catch let error as AskError {
            throw StepFailure(step: step, error: error)
        }
        return (reply["approved"]?.boolValue == true, reply["reason"]?.stringValue ?? "", reply)
    }

    // MARK: - Asks with retries and breakers

    private func retryPolicy(_ own: WorkflowDefinition.RetryPolicy?) -> WorkflowDefinition.RetryPolicy {
        own ?? definition.retry ?? WorkflowDefinition.RetryPolicy(attempts: 1)
    }

    private func call(_ step: String, _ service: String, input: JSONValue, _ retry: WorkflowDefinition.RetryPolicy?)
        async throws -> JSONValue
    {
        let policy = retryPolicy(retry)
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await breakerGate(service)
                try emit(WorkflowEvent("step.started", step: step, service: service, attempt: attempt))
                let reply = try await context.ask(service, try Payload(json: input))
                try await breakerRecord(service, code: nil)
                return Self.value(of: reply)
            } catch let error as AskError {
                try emit(WorkflowEvent("step.failed", step: step, service: service, attempt: attempt,
                                       code: error.code, error: error.message))
                try await breakerRecord(service, code: error.code)
                guard !Self.finalCodes.contains(error.code), attempt < policy.attempts else {
                    throw StepFailure(step: step, error: error)
                }
                try await sleep(policy.delay(after: attempt), step: step)
            }
        }
    }

    /// Runs ask steps at once; failed branches are retried together, each by its own policy.
    private func parallel(_ branches: [String]) async throws -> JSONValue {
        var results: [String: JSONValue] = [:]
        var attempts: [String: Int] = [:]
        var waiting = branches
        while !waiting.isEmpty {
            var open: [String] = []
            var asks: [(service: String, payload: Payload)] = []
            var blocked: [(String, AskError)] = []
            for name in waiting {
                guard let step = definition.steps[name], let service = step.ask else { continue }
                attempts[name, default: 0] += 1
                do {
                    try await breakerGate(service)
                    try emit(WorkflowEvent("step.started", step: name, service: service, attempt: attempts[name]))
                    asks.append((service, try Payload(json: scope.resolve(step.input ?? .object([:])))))
                    open.append(name)
                } catch let error as AskError {
                    blocked.append((name, error))
                }
            }
            var failed = blocked
            for (name, outcome) in zip(open, await context.askAllSettled(asks)) {
                let service = definition.steps[name]?.ask ?? ""
                switch outcome {
                case .success(let reply):
                    try await breakerRecord(service, code: nil)
                    results[name] = Self.value(of: reply)
                    scope.steps[name] = results[name]
                    completed.append(name)
                    try emit(WorkflowEvent("step.completed", step: name, result: results[name]))
                case .failure(let error):
                    let error = error as? AskError
                        ?? AskError(service: service, code: "ask_failed", message: "\(error)")
                    try await breakerRecord(service, code: error.code)
                    failed.append((name, error))
                }
            }
            waiting = []
            var delay: Int64 = 0
            for (name, error) in failed {
                try emit(WorkflowEvent("step.failed", step: name, service: definition.steps[name]?.ask,
                                       attempt: attempts[name], code: error.code, error: error.message))
                let policy = retryPolicy(definition.steps[name]?.retry)
                guard !Self.finalCodes.contains(error.code), attempts[name, default: 0] < policy.attempts else {
                    throw StepFailure(step: name, error: error)
                }
                waiting.append(name)
                delay = max(delay, policy.delay(after: attempts[name, default: 1]))
            }
            if !waiting.isEmpty { try await sleep(delay, step: waiting[0]) }
        }
        return .object(results)
    }

    private func breakerGate(_ service: String) async throws {
        guard let settings = definition.breaker, let breaker = breakers[service], let openedAt = breaker.openedAt,
              !breaker.halfOpen
        else { return }
        let now = try await loggedNow()
        let opensUntil = openedAt + Int64(settings.coolDownMs) * 1_000_000
        guard now >= opensUntil else {
            throw AskError(service: service, code: "circuit_open",
                           message: "the circuit for \(service) is open after \(breaker.failures) failures; "
                               + "a trial call is let through in \((opensUntil - now) / 1_000_000) ms")
        }
        breakers[service]?.halfOpen = true
        try emit(WorkflowEvent("breaker.half_opened", service: service, at: now))
    }

    private func breakerRecord(_ service: String, code: String?) async throws {
        guard let settings = definition.breaker else { return }
        if let code, Self.notTheServices.contains(code) { return }
        var breaker = breakers[service, default: Breaker()]
        defer { breakers[service] = breaker }
        guard code != nil else {
            if breaker.openedAt != nil {
                try emit(WorkflowEvent("breaker.closed", service: service, at: try await loggedNow()))
            }
            breaker = Breaker()
            return
        }
        breaker.failures += 1
        if breaker.halfOpen || (breaker.openedAt == nil && breaker.failures >= settings.failures) {
            let now = try await loggedNow()
            breaker.openedAt = now
            breaker.halfOpen = false
            try emit(WorkflowEvent("breaker.opened", service: service, attempt: breaker.failures, at: now))
        }
    }

    /// The router's clock, through the log: an `sb.timer` of no delay.
    private func loggedNow() async throws -> Int64 {
        let reply = try JSONValue(parsing: try await context.ask(ControlServices.timer,
                                                                 try Payload(json: ["delayMs": 0])).bytes)
        return reply["firedAt"]?.intValue ?? 0
    }

    private func sleep(_ milliseconds: Int64, step: String) async throws {
        guard milliseconds > 0 else { return }
        do {
            _ = try await context.ask(ControlServices.timer, try Payload(json: ["delayMs": milliseconds]))
        } catch let error as AskError {
            throw StepFailure(step: step, error: error)
        }
    }

    static func value(of reply: Payload) -> JSONValue {
        (try? JSONValue(parsing: reply.bytes)) ?? .string(reply.text)
    }

    // MARK: - Rollback

    /// Calls the compensations of completed steps, newest first; returns the steps undone.
    func rollback() async throws -> [String] {
        var undone: [String] = []
        for name in completed.reversed() {
            guard let step = definition.steps[name] else { continue }
            var compensations: [(String, JSONValue)] = []
            if let compensate = step.compensate {
                compensations.append((compensate.ask, scope.resolve(compensate.input ?? .object([:]))))
            } else if let result = scope.steps[name] {
                compensations = Self.declaredCompensations(in: result)
            }
            guard !compensations.isEmpty else { continue }
            for (service, input) in compensations {
                do {
                    _ = try await context.ask(service, try Payload(json: input))
                    try emit(WorkflowEvent("step.compensated", step: name, service: service))
                } catch let error as AskError {
                    if error.code == "cancelled" { throw error }
                    try emit(WorkflowEvent("compensation.failed", step: name, service: service, code: error.code,
                                           error: error.message))
                }
            }
            undone.append(name)
        }
        return undone
    }

    /// `{"compensation": {service, input}}` (a tool's reply) or `{"compensations": [...]}` (oldest
    /// first), newest first.
    static func declaredCompensations(in result: JSONValue) -> [(String, JSONValue)] {
        func one(_ value: JSONValue) -> (String, JSONValue)? {
            guard let service = value["service"]?.stringValue else { return nil }
            return (service, value["input"] ?? .object([:]))
        }
        if let single = result["compensation"], let compensation = one(single) { return [compensation] }
        return (result["compensations"]?.arrayValue ?? []).compactMap(one).reversed()
    }
}

extension JSONValue {
    /// `value` encoded and read back as JSON.
    init(encoding value: some Encodable) throws {
        self = try JSONValue(parsing: try Payload(json: value).bytes)
    }
}
