// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire

/// Answers from the log for re-issued asks, and forks: a new run whose history up to a position is
/// its parent's, continuing live from there.
extension BrokerStateMachine {
    /// Answers a re-issued native ask that the router's memory has no answer for: from the log,
    /// when the run answered it before, or in a fork from the parent, when the parent asked the
    /// same thing (same service, same frames) and had its answer by the fork position. False when
    /// the ask is new and must be served live.
    mutating func answerFromLog(_ request: Request, emitted: [EmittedEvent], now: Now, into output: inout Output)
        -> Bool
    {
        guard let answers = logAnswers else { return false }
        if let answer = answers.answer(run: request.runID, messageID: request.messageID) {
            guard answer.service == request.service, answer.bodyDigest == LogAnswers.digest(request.body.dropFirst())
            else {
                // The same id for another question: the re-executing handler did not do what it did before.
                output.sends.append((request.client, errorReply(
                    request, code: "nondeterministic",
                    message: "ask \(request.messageID) was answered before for a different request "
                        + "(\(answer.service), logged at \(answer.requestPosition))")))
                return true
            }
            // Answered long ago: the same answer again. What the ask carries was logged the first time.
            rememberRecovered(request, outcome: answer.outcome)
            if let reply = self.answers[request.messageID] { output.sends.append((request.client, reply)) }
            return true
        }
        guard let link = answers.fork(of: request.runID), let parentID = link.parentID(of: request.messageID),
              let answer = answers.answer(run: link.parent, messageID: parentID),
              answer.answerPosition <= link.until, answer.service == request.service,
              answer.bodyDigest == LogAnswers.digest(request.body.dropFirst())
        else { return false }
        for event in emitted {
            logEmitted(event, runID: request.runID, now: now, into: &output)
        }
        output.events.append(RouterEvents.requestReceived(
            request, forkedFrom: (link.parent, answer.requestPosition), now: now.wall))
        switch answer.outcome {
        case .final(let body):
            finish(request, body: Self.rebased(body, from: parentID, to: request), now: now, into: &output)
        case .failed(let code, let message):
            fail(request, code: code, message: message, now: now, into: &output)
        }
        return true
    }

    /// The parent's reply body with its envelope naming this run's ids.
    private static func rebased(_ body: [[UInt8]], from parentID: String, to request: Request) -> [[UInt8]] {
        guard let first = body.first, Envelope.isEnvelope(first), var envelope = try? Envelope(decoding: first)
        else { return body }
        if envelope.messageID.hasPrefix(parentID) {
            envelope.messageID = request.messageID + envelope.messageID.dropFirst(parentID.count)
        }
        envelope.runID = request.runID
        envelope.causationID = request.messageID
        envelope.headers[EmittedEvent.headerName] = nil
        guard let encoded = try? envelope.encoded() else { return body }
        return [encoded] + body.dropFirst()
    }

    struct ForkError: Error {
        var code: String
        var message: String
    }

    /// A fork, checked and built: its link to the parent and its first message.
    struct ForkPlan {
        var link: LogAnswers.ForkLink
        var service: String
        var body: [[UInt8]]
        var run: String { String(link.root.dropLast("/start".count)) }
    }

    /// Checks and builds a fork of `parent` at `until` (the log's tail when nil): the parent's first
    /// message, again, as the fork's first message.
    func planFork(_ parent: String, until: UInt64?) -> Result<ForkPlan, ForkError> {
        guard let answers = logAnswers, let root = answers.root(of: parent) else {
            return .failure(ForkError(code: "not_found", message: "no run \(parent) in the log"))
        }
        let tail = answers.tail()
        let until = until ?? tail
        guard until <= tail else {
            return .failure(ForkError(code: "bad_request", message: "position \(until) is past the log's end (\(tail))"))
        }
        guard until >= root.position else {
            return .failure(ForkError(code: "bad_request",
                                      message: "position \(until) is before run \(parent) began (at \(root.position))"))
        }
        guard let first = root.body.first, Envelope.isEnvelope(first), var envelope = try? Envelope(decoding: first)
        else {
            return .failure(ForkError(code: "bad_request",
                                      message: "run \(parent) was started by a plain MDP client; only native runs fork"))
        }
        let run = Envelope.newRunID()
        let rootID = run + "/start"
        // A fork of a fork keeps the first run's clock and random seed.
        let time = envelope.headers[Envelope.forkTimeHeader] ?? String(root.timestamp.nanosecondsSinceEpoch)
        let origin = envelope.headers[Envelope.forkOriginHeader] ?? root.messageID
        envelope.messageID = rootID
        envelope.runID = run
        envelope.causationID = ""
        envelope.attempt = 1
        envelope.deadline = 0
        // The fork's instance is its own (keyed by its run), not the parent's shared one.
        envelope.headers[Envelope.keyHeader] = nil
        envelope.headers[Envelope.forkParentHeader] = parent
        envelope.headers[Envelope.forkUntilHeader] = String(until)
        envelope.headers[Envelope.forkOriginHeader] = origin
        envelope.headers[Envelope.forkTimeHeader] = time
        guard let head = try? envelope.encoded() else {
            return .failure(ForkError(code: "bad_request", message: "the fork's envelope does not encode"))
        }
        let link = LogAnswers.ForkLink(parent: parent, until: until, origin: root.messageID, root: rootID)
        return .success(ForkPlan(link: link, service: root.service, body: [head] + root.body.dropFirst()))
    }

    /// Starts a planned fork: logs `run.forked`, then sends its first message from `client`, which
    /// gets its final reply.
    mutating func startFork(_ plan: ForkPlan, client: [UInt8], framing: MDPFraming, now: Now,
                            into output: inout Output) {
        output.events.append(RouterEvents.forked(plan.link, runID: plan.run, now: now.wall))
        clientRequest(client, service: plan.service, body: plan.body, framing: framing, now: now, into: &output)
    }
}
