// SPDX-License-Identifier: Apache-2.0
// JSONSerialization: approval details are any JSON, kept with sorted keys.
import Foundation
import SwitchboardLog
import SwitchboardWire

/// Services the router answers itself (docs/workflows.md, docs/policy.md).
public enum ControlServices {
    /// Parks the request until a human approves or rejects it: body `{"title": …, "details": …}`,
    /// reply `{"id", "approved", "note" | "reason"}`.
    public static let approval = "sb.approval"
    /// Answers after a delay counted from the request's logged receive time: body `{"delayMs": n}`,
    /// reply `{"firedAt", "dueAt"}` (ns since the epoch). Pending timers are pending requests, so
    /// they survive a router restart; `delayMs` 0 reads the logged clock.
    public static let timer = "sb.timer"
    /// Operator commands, not logged themselves (their effects are): body `{"op": …}` with
    /// `approvals`, `decide` (`id`, `approved`, `note`, `reason`), `pause`, `resume`, `cancel` (`run`).
    public static let control = "sb.control"
    /// Longest timer: 30 days.
    static let maximumDelay: Int64 = 30 * 86_400_000
}

/// The control plane's events.
enum ControlEvents {
    static let approvalRequested = "approval.requested"
    static let approvalDecided = "approval.decided"
    static let policyDecided = "policy.decided"
    static let runPaused = "run.paused"
    static let runResumed = "run.resumed"
    static let runCancelled = "run.cancelled"
    static let llmUsage = "llm.usage"

    /// The `details` member of an `approval.requested` payload, as compact JSON text.
    static func details(of payload: [UInt8]) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any],
              let details = object["details"],
              let data = try? JSONSerialization.data(withJSONObject: details,
                                                     options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }

    private struct Decision: Decodable {
        var decision: String
        var rule: String
    }

    /// The rule a `policy.decided` names, and whether it let the request through.
    static func countedRule(_ payload: [UInt8]) -> (String, Bool)? {
        guard let decision = try? JSONDecoder().decode(Decision.self, from: Data(payload)) else { return nil }
        return (decision.rule, !decision.rule.isEmpty && decision.decision != Policy.Decision.deny.rawValue)
    }
}

/// What the router holds for the control plane.
struct ControlState {
    enum RunMode {
        case paused
        case cancelled
    }

    struct Parked {
        var record: ApprovalRecord
        var request: BrokerStateMachine.Request
    }

    struct Timer {
        var due: Int64
        var request: BrokerStateMachine.Request
    }

    var policy: Policy?
    var parked: [String: Parked] = [:]
    var timers: [Timer] = []
    var modes: [String: RunMode] = [:]
    var held: [String: [BrokerStateMachine.Request]] = [:]
    /// Approvals read from the log at start-up, by id, for the requests recovered then.
    var recovered: [String: ApprovalRecord] = [:]
    var runCost: [String: UInt64] = [:]
    var dayCost: [String: UInt64] = [:]
    var calls: [String: UInt64] = [:]
    /// Which service each recent message was sent to: the asking agent of the requests it causes.
    var serviceOf: [String: String] = [:]
    var serviceOrder: [String] = []
    var serviceOrderStart = 0
    /// The run's state in the run-status projection, or nil for an unknown run.
    var runState: (@Sendable (String) -> String?)?

    static let servicesRemembered = 200_000

    /// A request parked, waiting on a timer or held for paused run `runID` as `messageID` gets the
    /// new client address; false when none is. Approvals and held requests are found by key:
    /// hosts ask again now and then for as long as their asks wait.
    mutating func attach(_ messageID: String, run runID: String, to client: [UInt8], framing: MDPFraming) -> Bool {
        let approval = BrokerStateMachine.approvalID(messageID)
        if parked[approval]?.request.messageID == messageID {
            parked[approval]?.request.attach(client, framing: framing)
            return true
        }
        if let index = held[runID]?.firstIndex(where: { $0.messageID == messageID }) {
            held[runID]?[index].attach(client, framing: framing)
            return true
        }
        for index in timers.indices where timers[index].request.messageID == messageID {
            timers[index].request.attach(client, framing: framing)
            return true
        }
        return false
    }

    /// Only a policy asks who sent a request: without one, the router keeps nothing per request.
    mutating func remember(_ messageID: String, service: String) {
        guard policy != nil, serviceOf.updateValue(service, forKey: messageID) == nil else { return }
        serviceOrder.append(messageID)
        if serviceOrder.count - serviceOrderStart > Self.servicesRemembered {
            serviceOf[serviceOrder[serviceOrderStart]] = nil
            serviceOrderStart += 1
            if serviceOrderStart > Self.servicesRemembered / 2 {
                serviceOrder.removeFirst(serviceOrderStart)
                serviceOrderStart = 0
            }
        }
    }
}

extension BrokerStateMachine {
    // MARK: - Admission

    /// Where a logged request goes: failed (cancelled run, policy denial), held (paused run),
    /// parked (approval, timer), or queued for a worker.
    mutating func admit(_ request: Request, now: Now, into output: inout Output, evaluatePolicy: Bool) {
        control.remember(request.messageID, service: request.service)
        if request.native { openNative.insert(Prehashed(request.messageID)) }
        switch control.modes[request.runID] {
        case .cancelled:
            return fail(request, code: "cancelled", message: "run \(request.runID) was cancelled", now: now,
                        into: &output)
        case .paused:
            control.held[request.runID, default: []].append(request)
            // A client's new request into the run (policy is evaluated only for new ones) reopens
            // it in the log if its requests were all answered meanwhile: the log says paused again,
            // so that a restarted router holds the run's requests too.
            if evaluatePolicy && request.causationID.isEmpty {
                output.events.append(Self.runEvent(ControlEvents.runPaused, run: request.runID, by: "router",
                                                   reason: "a new request arrived while the run was paused", now: now))
            }
            return
        case nil:
            break
        }
        switch request.service {
        case ControlServices.approval:
            return parkApproval(request, kind: "step", agent: askingAgent(request), title: nil, details: nil, now: now,
                                into: &output)
        case ControlServices.timer:
            return scheduleTimer(request, now: now, into: &output)
        default:
            break
        }
        if evaluatePolicy, let policy = control.policy, !request.service.hasPrefix("sb.") {
            let agent = askingAgent(request)
            let (decision, rule, reason) = decide(policy, agent: agent, request: request, now: now)
            var json = JSONObject()
            json["decision"] = decision.rawValue
            json["rule"] = rule
            json["agent"] = agent
            json["service"] = request.service
            json["reason"] = reason
            output.events.append(RouterEvents.event(ControlEvents.policyDecided, request.runID,
                                                    messageID: request.messageID + "/policy",
                                                    causation: request.messageID, json, now.wall))
            switch decision {
            case .deny:
                return fail(request, code: "policy_denied", message: reason, now: now, into: &output)
            case .requestApproval:
                let details = "{\"service\":\(Self.quoted(request.service)),\"agent\":\(Self.quoted(agent)),"
                    + "\"rule\":\(Self.quoted(rule)),\"input\":\(Self.jsonOrString(Self.payload(of: request)))}"
                return parkApproval(request, kind: "policy", agent: agent,
                                    title: "\(agent) asks \(request.service)" + (rule.isEmpty ? "" : " (rule \(rule))"),
                                    details: details,
                                    now: now, into: &output)
            case .allow:
                break
            }
        }
        enqueue(request, now: now, into: &output)
    }

    /// The service whose handler sent `request`: `client` for none, `unknown` when forgotten.
    func askingAgent(_ request: Request) -> String {
        guard !request.causationID.isEmpty else { return "client" }
        return control.serviceOf[request.causationID] ?? "unknown"
    }

    private mutating func decide(_ policy: Policy, agent: String, request: Request, now: Now)
        -> (Policy.Decision, String, String)
    {
        guard let index = policy.match(agent: agent, service: request.service) else {
            let reason = policy.defaultDecision == .deny
                ? "no policy rule lets \(agent) ask \(request.service), and the default is deny" : "default"
            return (policy.defaultDecision, "", reason)
        }
        let rule = policy.rules[index]
        let name = policy.ruleName(index)
        if rule.decision == .deny {
            return (.deny, name, "policy rule \(name) denies \(agent) asking \(request.service)"
                        + (rule.reason.map { ": \($0)" } ?? ""))
        }
        let callKey = "\(name)\u{0}\(request.runID)"
        if let maxCalls = rule.maxCalls, control.calls[callKey, default: 0] >= UInt64(maxCalls) {
            return (.deny, name, "policy rule \(name) allows \(maxCalls) calls per run, and run \(request.runID) "
                        + "has made them all")
        }
        if let limit = rule.maxCostPerRun, Double(control.runCost[request.runID, default: 0]) / 1e6 >= limit {
            let spent = Double(control.runCost[request.runID, default: 0]) / 1e6
            return (.deny, name, "budget exceeded: run \(request.runID) has spent $\(Self.money(spent)) of its "
                        + "$\(Self.money(limit)) per run (rule \(name))")
        }
        if let limit = rule.maxCostPerDay {
            let day = UsageTotals.day(now.wall)
            let spent = Double(control.dayCost[day, default: 0]) / 1e6
            if spent >= limit {
                return (.deny, name, "budget exceeded: $\(Self.money(spent)) spent on \(day) (UTC) of "
                            + "$\(Self.money(limit)) per day (rule \(name))")
            }
        }
        control.calls[callKey, default: 0] += 1
        return (rule.decision, name, rule.decision == .allow ? "rule \(name)" : "rule \(name) asks for a human's approval")
    }

    /// Logs an event an agent emitted; `llm.usage` also counts towards the policy's budgets.
    mutating func logEmitted(_ event: EmittedEvent, runID: String, now: Now, into output: inout Output) {
        let recorded = RouterEvents.emitted(event, runID: runID, now: now.wall)
        output.events.append(recorded)
        uncommittedStreams.insert(event.streamID, batch: batch)
        guard control.policy?.hasLimits == true, event.type == ControlEvents.llmUsage,
              let usage = UsageTotals(usageEvent: event.payload)
        else { return }
        control.runCost[runID, default: 0] &+= usage.costMicroUSD
        control.dayCost[UsageTotals.day(now.wall), default: 0] &+= usage.costMicroUSD
    }

    // MARK: - Approvals

    static func approvalID(_ messageID: String) -> String {
        "ap-" + String(SHA256Digest.of(Array(messageID.utf8)).description.prefix(12))
    }

    private mutating func parkApproval(
        _ request: Request, kind: String, agent: String, title: String?, details: String?, now: Now,
        into output: inout Output
    ) {
        var title = title
        var details = details
        if kind == "step" {
            struct Body: Decodable { var title: String }
            let payload = Self.payload(of: request)
            guard let body = try? JSONDecoder().decode(Body.self, from: Data(payload)),
                  !body.title.isEmpty, body.title.utf8.count <= 500
            else {
                return fail(request, code: "bad_request",
                            message: "sb.approval takes {\"title\": text of 1-500 bytes, \"details\": any JSON}",
                            now: now, into: &output)
            }
            title = body.title
            details = ControlEvents.details(of: payload)
        }
        let id = Self.approvalID(request.messageID)
        var json = JSONObject()
        json["id"] = id
        json["kind"] = kind
        json["service"] = request.service
        json["agent"] = agent
        json["title"] = title ?? ""
        json["request"] = request.messageID
        json.raw("details", details ?? "null")
        output.events.append(RouterEvents.event(ControlEvents.approvalRequested, request.runID,
                                                messageID: request.messageID + "/approval",
                                                causation: request.messageID, json, now.wall))
        let record = ApprovalRecord(
            id: id, runID: request.runID, kind: kind, service: request.service, agent: agent, title: title ?? "",
            details: details ?? "null", request: request.messageID,
            requestedAt: now.wall.nanosecondsSinceEpoch, status: "pending")
        control.parked[id] = ControlState.Parked(record: record, request: request)
    }

    private mutating func decideApproval(
        _ id: String, approved: Bool, note: String?, reason: String?, status: String? = nil, now: Now,
        into output: inout Output
    ) {
        guard let parked = control.parked.removeValue(forKey: id) else { return }
        let status = status ?? (approved ? "approved" : "rejected")
        var json = JSONObject()
        json["id"] = id
        json["status"] = status
        json.bool("approved", approved)
        json["note"] = note
        json["reason"] = reason
        output.events.append(RouterEvents.event(ControlEvents.approvalDecided, parked.record.runID,
                                                messageID: parked.request.messageID + "/decision",
                                                causation: parked.request.messageID, json, now.wall))
        let request = parked.request
        if status == "cancelled" {
            return fail(request, code: "cancelled", message: "run \(request.runID) was cancelled", now: now,
                        into: &output)
        }
        if parked.record.kind == "step" {
            var reply = JSONObject()
            reply["id"] = id
            reply.bool("approved", approved)
            reply["note"] = note
            reply["reason"] = reason
            return finish(request, body: [reply.bytes], now: now, into: &output)
        }
        if approved {
            admit(request, now: now, into: &output, evaluatePolicy: false)
        } else {
            fail(request, code: "approval_rejected",
                 message: "a human rejected \(parked.record.agent) asking \(request.service): \(reason ?? "")",
                 now: now, into: &output)
        }
    }

    // MARK: - Timers

    private mutating func scheduleTimer(_ request: Request, now: Now, into output: inout Output) {
        struct Body: Decodable { var delayMs: Int64 }
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(Self.payload(of: request))),
              (0...ControlServices.maximumDelay).contains(body.delayMs)
        else {
            return fail(request, code: "bad_request",
                        message: "sb.timer takes {\"delayMs\": 0 to \(ControlServices.maximumDelay)}", now: now,
                        into: &output)
        }
        control.timers.append(ControlState.Timer(
            due: request.receivedWall.nanosecondsSinceEpoch + body.delayMs * 1_000_000, request: request))
        fireTimers(now: now, into: &output)
    }

    mutating func fireTimers(now: Now, into output: inout Output) {
        guard control.timers.contains(where: { $0.due <= now.wall.nanosecondsSinceEpoch }) else { return }
        let due = control.timers.filter { $0.due <= now.wall.nanosecondsSinceEpoch }
        control.timers.removeAll { $0.due <= now.wall.nanosecondsSinceEpoch }
        for timer in due {
            var reply = JSONObject()
            reply.number("firedAt", Int(now.wall.nanosecondsSinceEpoch))
            reply.number("dueAt", Int(timer.due))
            finish(timer.request, body: [reply.bytes], now: now, into: &output)
        }
    }

    /// Milliseconds until the next timer is due (a day when none is).
    func nextTimer(now: Now) -> Int64 {
        guard let due = control.timers.map(\.due).min() else { return 86_400_000 }
        return max(0, (due - now.wall.nanosecondsSinceEpoch + 999_999) / 1_000_000)
    }

    // MARK: - Operator commands

    private struct ControlBody: Decodable {
        var op: String
        var id: String?
        var approved: Bool?
        var note: String?
        var reason: String?
        var run: String?
        var until: UInt64?
    }

    mutating func controlRequest(
        _ client: [UInt8], body: [[UInt8]], framing: MDPFraming, now: Now, into output: inout Output
    ) {
        let head = body.first.map(Envelope.isEnvelope) == true ? body.first : nil
        let native = head.flatMap { try? Envelope(decoding: $0) }.flatMap { $0.messageID.isEmpty ? nil : $0 }
        // A native client asking again under the same id (an agent host repeats an ask it waited
        // long for) gets the first answer: a command runs once, a fork starts once.
        if let native, let answer = answers[native.messageID] {
            output.sends.append((client, answer))
            return
        }
        func reply(_ text: String) {
            var frames = [Array(text.utf8)]
            if let native,
               let envelope = try? Envelope(messageID: native.messageID + "/final", runID: native.runID,
                                            causationID: native.messageID).encoded() {
                frames.insert(envelope, at: 0)
            }
            let reply = MDPCodec.clientReply(.final, service: ControlServices.control, body: frames, framing: framing)
            output.sends.append((client, reply))
            if let native { answers.remember(native.messageID, reply: reply) }
        }
        func failure(_ code: String, _ message: String) {
            reply(String(decoding: RouterEvents.errorBody(code: code, message: message), as: UTF8.self))
        }
        let payload = (head == nil ? body.first : body.dropFirst().first) ?? []
        guard let command = try? JSONDecoder().decode(ControlBody.self, from: Data(payload)) else {
            return failure("bad_request", "sb.control takes a JSON object with an \"op\"")
        }
        switch command.op {
        case "approvals":
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let records = control.parked.values.map(\.record).sorted { ($0.requestedAt, $0.id) < ($1.requestedAt, $1.id) }
            let list = (try? encoder.encode(records)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
            reply("{\"approvals\":\(list)}")
        case "decide":
            guard let id = command.id, let approved = command.approved else {
                return failure("bad_request", "decide takes an \"id\" and \"approved\"")
            }
            guard control.parked[id] != nil else {
                return failure("not_found", "no pending approval \(id)")
            }
            if !approved && (command.reason ?? "").isEmpty {
                return failure("bad_request", "a rejection needs a reason")
            }
            decideApproval(id, approved: approved, note: command.note, reason: command.reason, now: now,
                           into: &output)
            reply("{\"ok\":true,\"id\":\(Self.quoted(id)),\"status\":\"\(approved ? "approved" : "rejected")\"}")
        case "pause", "resume", "cancel":
            guard let run = command.run, !run.isEmpty, run.utf8.count <= Self.maximumIDLength else {
                return failure("bad_request", "\(command.op) takes a \"run\" id")
            }
            if let lookup = control.runState {
                guard let state = lookup(run) else { return failure("not_found", "no run \(run) in the log") }
                // A run paused here whose requests were all answered meanwhile is completed in the
                // log, but this router still holds what comes for it: resuming lets that through.
                let releasesHold = command.op == "resume" && control.modes[run] == .paused
                if (["completed", "failed"].contains(state) && !releasesHold)
                    || (state == "cancelled" && command.op != "cancel") {
                    return failure("conflict", "run \(run) is \(state)")
                }
            }
            switch runCommand(command.op, run: run, reason: command.reason, now: now, into: &output) {
            case .success(let text): reply(text)
            case .failure(let error): failure(error.code, error.message)
            }
        case "fork":
            guard let run = command.run, !run.isEmpty, run.utf8.count <= Self.maximumIDLength else {
                return failure("bad_request", "fork takes a \"run\" id")
            }
            switch planFork(run, until: command.until) {
            case .success(let plan):
                // The answer names the fork before its first message's replies can arrive.
                reply("{\"ok\":true,\"run\":\(Self.quoted(plan.run)),\"parent\":\(Self.quoted(run)),"
                      + "\"service\":\(Self.quoted(plan.service)),\"until\":\(plan.link.until)}")
                startFork(plan, client: client, framing: framing, now: now, into: &output)
            case .failure(let error):
                failure(error.code, error.message)
            }
        default:
            failure("bad_request", "unknown op \(command.op); known: approvals, decide, pause, resume, cancel, fork")
        }
    }

    /// A run's `run.paused`, `run.resumed` or `run.cancelled`: `{"by", "reason"?}`.
    static func runEvent(_ type: String, run: String, by: String, reason: String?, now: Now) -> NewEvent {
        var json = JSONObject()
        json["by"] = by
        json["reason"] = reason
        return RouterEvents.event(type, run, messageID: "", causation: "", json, now.wall)
    }

    struct CommandError: Error {
        var code: String
        var message: String
    }

    private mutating func runCommand(_ op: String, run: String, reason: String?, now: Now, into output: inout Output)
        -> Result<String, CommandError>
    {
        func event(_ type: String) {
            output.events.append(Self.runEvent(type, run: run, by: "operator", reason: reason, now: now))
        }
        switch (op, control.modes[run]) {
        case (_, .cancelled):
            return .failure(CommandError(code: "conflict", message: "run \(run) is cancelled"))
        case ("pause", .paused):
            return .success("{\"ok\":true,\"state\":\"paused\",\"already\":true}")
        case ("pause", nil):
            control.modes[run] = .paused
            event(ControlEvents.runPaused)
            return .success("{\"ok\":true,\"state\":\"paused\"}")
        case ("resume", .paused):
            control.modes[run] = nil
            event(ControlEvents.runResumed)
            for request in control.held.removeValue(forKey: run) ?? [] {
                admit(request, now: now, into: &output, evaluatePolicy: true)
            }
            return .success("{\"ok\":true,\"state\":\"running\"}")
        case ("resume", nil):
            return .failure(CommandError(code: "conflict", message: "run \(run) is not paused"))
        default:
            control.modes[run] = .cancelled
            event(ControlEvents.runCancelled)
            for request in control.held.removeValue(forKey: run) ?? [] {
                fail(request, code: "cancelled", message: "run \(run) was cancelled", now: now, into: &output)
            }
            for (id, parked) in control.parked where parked.record.runID == run {
                decideApproval(id, approved: false, note: nil, reason: "run cancelled", status: "cancelled", now: now,
                               into: &output)
            }
            let timers = control.timers.filter { $0.request.runID == run }
            control.timers.removeAll { $0.request.runID == run }
            for timer in timers {
                fail(timer.request, code: "cancelled", message: "run \(run) was cancelled", now: now, into: &output)
            }
            return .success("{\"ok\":true,\"state\":\"cancelled\"}")
        }
    }

    // MARK: - Helpers

    /// The request's first body frame after its envelope.
    static func payload(of request: Request) -> [UInt8] {
        let first = request.body.first.map(Envelope.isEnvelope) == true ? request.body.dropFirst().first
            : request.body.first
        return first ?? []
    }

    static func quoted(_ text: String) -> String {
        var out = ""
        JSONText.appendString(text, to: &out)
        return out
    }

    static func jsonOrString(_ bytes: [UInt8]) -> String {
        JSONText.isValid(bytes) && !bytes.isEmpty ? String(decoding: bytes, as: UTF8.self)
            : quoted(String(decoding: bytes, as: UTF8.self))
    }

    static func money(_ value: Double) -> String {
        let tenThousandths = Int64((value * 10_000).rounded())
        let fraction = String(tenThousandths % 10_000)
        return "\(tenThousandths / 10_000)." + String(repeating: "0", count: 4 - fraction.count) + fraction
    }
}
