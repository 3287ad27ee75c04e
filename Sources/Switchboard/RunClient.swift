// SPDX-License-Identifier: Apache-2.0
public import SwitchboardWire
import SwitchboardRouter
import SwitchboardLog
#if canImport(Glibc)
import Glibc
#endif

/// Starts runs through the router and collects their results: a native MDP client on one DEALER
/// socket, with any number of runs in flight. Synchronous; use it from one thread.
///
/// A run's first message that gets no result for ``resendInterval`` is sent again under its id,
/// marked re-issued, then after twice as long, up to a minute apart: a router that stopped before
/// committing it (a crash, a full disk) never saw it, and a router that has it answers from its
/// memory or its log, or attaches the repeat to the run under way. Nothing runs twice.
public final class RunClient {
    /// The final reply to a run's first message.
    public struct Result: Sendable {
        public var runID: String
        public var payload: Payload
        /// Set when the reply is an error.
        public var error: AskError?
    }

    private struct Open {
        var runID: String
        var service: String
        /// The first message again, re-issued; nil for a fork, whose first message the router made.
        var repeated: [[UInt8]]?
        var resendAt: Int64 = .max
        var interval: Int64 = 0
    }

    private let client: MDPClient
    private var open: [String: Open] = [:]
    /// Milliseconds without a result before a run's first message is sent again; 0 never.
    public var resendInterval = 5_000
    private var nextResendCheck: Int64 = .max
    /// Run replies that arrived while waiting for something else.
    private var stash: [[[UInt8]]] = []

    public init(context: ZMQContext, endpoint: String) throws {
        client = try MDPClient(context: context, endpoint: endpoint)
    }

    /// A new run id: `run-` and 16 random hex digits.
    public static func makeRunID() -> String {
        Envelope.newRunID()
    }

    /// Sends `input` to `service` as the first message of a run; returns the run id.
    @discardableResult
    public func start(_ service: String, input: Payload, runID: String = RunClient.makeRunID(), key: String? = nil)
        throws -> String
    {
        let messageID = runID + "/start"
        var headers: [String: String] = [:]
        if let key { headers[AgentMessage.keyHeader] = key }
        let envelope = Envelope(messageID: messageID, runID: runID, headers: headers)
        try client.send(service: service, body: [try envelope.encoded(), input.bytes])
        var run = Open(runID: runID, service: service)
        if resendInterval > 0 {
            headers[Envelope.reissueHeader] = "1"
            run.repeated = [try Envelope(messageID: messageID, runID: runID, headers: headers).encoded(), input.bytes]
            run.interval = Int64(resendInterval)
            run.resendAt = MonotonicTime.milliseconds() + run.interval
            nextResendCheck = min(nextResendCheck, run.resendAt)
        }
        open[messageID] = run
        return runID
    }

    /// Asks the router to fork `run`: a new run whose history up to log position `until` (the log's
    /// tail when nil) is the parent's, continuing live from there. Returns the fork's run id; its
    /// result comes through ``nextResult(timeout:)`` like a started run's.
    /// - Throws: ``ForkRefused`` when the router refuses (an unknown run, a position before it began).
    public func fork(_ run: String, until: UInt64?) throws -> String {
        var command = "{\"op\":\"fork\",\"run\":"
        JSONText.appendString(run, to: &command)
        if let until { command += ",\"until\":\(until)" }
        command += "}"
        try client.send(service: ControlServices.control, body: [Array(command.utf8)])
        while let reply = try client.receive(timeout: 10_000) {
            guard reply.service == ControlServices.control else {
                if reply.command == .final { stash.append(reply.body) }
                continue
            }
            let answer = FlatJSON(reply.body.last ?? [])
            guard let fork = answer?.strings["run"], let service = answer?.strings["service"] else {
                let code = answer?.strings["error"] ?? "bad_response"
                throw ForkRefused(code: code, message: answer?.strings["message"] ?? "the router's answer is not a fork")
            }
            open[fork + "/start"] = Open(runID: fork, service: service)
            return fork
        }
        throw WireError(.timeout, "no answer from the router within 10 s")
    }

    /// Runs started and not yet finished.
    public var pending: Int { open.count }

    /// The next run result, or nil after `timeout` milliseconds without one (-1: wait for one).
    public func nextResult(timeout: Int) throws -> Result? {
        while !stash.isEmpty {
            if let result = result(from: stash.removeFirst()) { return result }
        }
        let deadline = timeout < 0 ? Int64.max : MonotonicTime.milliseconds() + Int64(timeout)
        while true {
            var now = MonotonicTime.milliseconds()
            if now >= nextResendCheck {
                try resendOverdue(now: now)
                now = MonotonicTime.milliseconds()
            }
            let until = min(deadline, nextResendCheck)
            let wait = until == .max ? -1 : Int(clamping: max(0, until - now))
            if let reply = try client.receive(timeout: wait) {
                guard reply.command == .final, let result = result(from: reply.body) else { continue }
                return result
            }
            if MonotonicTime.milliseconds() >= deadline { return nil }
        }
    }

    /// Sends again the first messages of runs whose results are overdue, each at most a minute apart.
    private func resendOverdue(now: Int64) throws {
        nextResendCheck = .max
        for (messageID, run) in open {
            guard let repeated = run.repeated else { continue }
            if run.resendAt <= now {
                // A full queue means the router is away: the copy already waiting for it will do.
                _ = try client.send(service: run.service, body: repeated, wait: false)
                let interval = min(run.interval * 2, 60_000)
                open[messageID]?.interval = interval
                open[messageID]?.resendAt = now + interval
                nextResendCheck = min(nextResendCheck, now + interval)
            } else {
                nextResendCheck = min(nextResendCheck, run.resendAt)
            }
        }
    }

    private func result(from replyBody: [[UInt8]]) -> Result? {
        guard let first = replyBody.first,
              let (id, status) = try? Envelope.causationID(andHeader: "status", decoding: first),
              let run = open.removeValue(forKey: id)
        else { return nil }
        let body = Array(replyBody.dropFirst())
        return Result(runID: run.runID, payload: Payload(bytes: body.first ?? []),
                      error: AskError(service: run.service, status: status, frames: body))
    }

    /// Waits until the router has a worker for `service` (asking `mmi.service`); false when
    /// `timeout` milliseconds pass first, whether or not a router answers meanwhile.
    public func waitForService(_ service: String, timeout: Int) throws -> Bool {
        // Counted on the clock: waits for an answer that never comes take the time too.
        let deadline = MonotonicTime.milliseconds() + Int64(max(0, timeout))
        while true {
            try client.send(service: "mmi.service", body: [Array(service.utf8)])
            let wait = { Int(max(1, min(5000, deadline - MonotonicTime.milliseconds()))) }
            while let reply = try client.receive(timeout: wait()) {
                guard reply.service == "mmi.service" else {
                    if reply.command == .final { stash.append(reply.body) }
                    guard MonotonicTime.milliseconds() < deadline else { return false }
                    continue
                }
                if reply.body.last == Array("200".utf8) { return true }
                break
            }
            guard MonotonicTime.milliseconds() < deadline else { return false }
            usleep(20_000)
        }
    }

    /// The run's committed events from `position` on, as `(position, CloudEvent JSON)`, read through
    /// the router's `sb.events`; `next` is where to ask from next time.
    public func events(of runID: String, from position: UInt64) throws -> (events: [(UInt64, String)], next: UInt64) {
        try client.send(service: EventBus.catchUpService, body: [EventBus.position(max(1, position)), Array(runID.utf8)])
        var events: [(UInt64, String)] = []
        while let reply = try client.receive(timeout: 5000) {
            guard reply.service == EventBus.catchUpService else {
                if reply.command == .final { stash.append(reply.body) }
                continue
            }
            if reply.command == .partial, reply.body.count == 2, let at = EventBus.decodePosition(reply.body[0]) {
                // A late answer to an earlier catch-up may repeat events already handed out.
                if at >= position { events.append((at, String(decoding: reply.body[1], as: UTF8.self))) }
            } else if reply.command == .final {
                let covered = reply.body.first.flatMap(EventBus.decodePosition) ?? position
                return (events, max(position, covered + 1))
            }
        }
        throw WireError(.timeout, "no reply from sb.events within 5 s")
    }
}

@available(*, unavailable)
extension RunClient: Sendable {}

/// The router's refusal of a fork, with its error code (`not_found`, `bad_request`).
public struct ForkRefused: Error, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var description: String { "\(code): \(message)" }
}
