// SPDX-License-Identifier: Apache-2.0
public import Logging
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import SwitchboardLog
import SwitchboardWire

/// A handler's only door to the world: asks through the router, emitted events, and the time and
/// random numbers of the logged message.
///
/// One context serves one message. Asks and events are numbered in the order the handler makes
/// them, and their ids derive from the message's id, so a re-execution (recovery, replay) makes the
/// same ids and is checked against, or served from, what the log holds.
///
/// > Important: use a context only inside the handler it was given to, on its agent's actor.
public final class AgentContext<A: AgentActor> {
    /// The message being handled.
    public let message: AgentMessage
    /// The instance handling it.
    public let agentID: AgentID
    /// When the router received the message, as the log records it: the handler's clock.
    public let now: Timestamp
    /// Carries the run, message and agent ids as metadata; made on first use, as most handlers never log.
    public private(set) lazy var logger: Logger = {
        var logger = baseLogger
        logger[metadataKey: "switchboard.run"] = "\(message.runID)"
        logger[metadataKey: "switchboard.message"] = "\(message.messageID)"
        logger[metadataKey: "switchboard.agent"] = "\(agentID)"
        return logger
    }()

    let agent: A
    let session: any AgentSession
    private(set) var pending: [EmittedEvent] = []
    private(set) var askCount = 0
    private(set) var emitCount = 0
    private let baseLogger: Logger
    /// Made once per message rather than per emitted event.
    private lazy var streamID = agentID.streamID
    /// Looked up once per message rather than per ask or event.
    private lazy var reissues = message.reissues
    private lazy var namesEvents = session.namesEvents
    /// Seeded on the first draw: the seed costs a SHA-256, and most handlers draw nothing.
    private lazy var generator = DeterministicGenerator(seed: "\(message.seedID)\u{0}\(now.nanosecondsSinceEpoch)")

    init(agent: A, agentID: AgentID, message: AgentMessage, now: Timestamp, session: any AgentSession,
         logger: Logger) {
        self.agent = agent
        self.agentID = agentID
        self.message = message
        self.now = now
        self.session = session
        baseLogger = logger
    }

    /// The run this message belongs to.
    public var runID: String { message.runID }

    /// Applies `event` to the agent's state at once and records it; it reaches the log with the
    /// agent's next ask or its reply.
    public func emit(_ event: A.State.Event) throws {
        let payload = try CanonicalJSON.encode(event)
        emitCount += 1
        pending.append(EmittedEvent(
            type: event.eventType, streamID: streamID,
            messageID: namesEvents ? Identifiers.event(message.messageID, emitCount) : "",
            causationID: message.messageID,
            payload: payload))
        agent.assumeIsolated { $0.state.apply(event) }
    }

    /// Asks `service` through the router and returns its final reply.
    /// - Parameter key: the instance key when `service` is an agent (the run id when nil).
    /// - Throws: ``AskError`` when the reply is an error.
    nonisolated(nonsending) public func ask(_ service: String, _ payload: Payload, key: String? = nil) async throws
        -> Payload
    {
        try await askWithPartials(service, payload, key: key).payload
    }

    /// Asks `service` and returns its final reply with the partial replies that preceded it;
    /// `onPartial` sees each partial as it arrives.
    nonisolated(nonsending) public func askWithPartials(
        _ service: String, _ payload: Payload, key: String? = nil,
        onPartial: (@Sendable (Payload) -> Void)? = nil
    ) async throws -> AskReply {
        let ask = makeAsk(service, payload, key: key)
        return try await session.ask(ask, onPartial: onPartial)
    }

    /// Asks several services at once. Ids are taken in the order given, so the asks are numbered
    /// the same way on every execution whatever order their replies come back in.
    nonisolated(nonsending) public func askAll(_ asks: [(service: String, payload: Payload)]) async throws
        -> [Payload]
    {
        let outgoing = asks.map { makeAsk($0.service, $0.payload, key: nil) }
        let session = self.session
        return try await withThrowingTaskGroup(of: (Int, Payload).self) { group in
            for (index, ask) in outgoing.enumerated() {
                group.addTask { (index, try await session.ask(ask, onPartial: nil).payload) }
            }
            var results = [Payload?](repeating: nil, count: outgoing.count)
            for try await (index, payload) in group { results[index] = payload }
            return results.compactMap { $0 }
        }
    }

    /// Asks several services at once and returns each reply or error, in the order given; ids are
    /// taken in that order, like ``askAll(_:)``.
    nonisolated(nonsending) public func askAllSettled(_ asks: [(service: String, payload: Payload)]) async
        -> [Result<Payload, any Error>]
    {
        let outgoing = asks.map { makeAsk($0.service, $0.payload, key: nil) }
        let session = self.session
        return await withTaskGroup(of: (Int, Result<Payload, any Error>).self) { group in
            for (index, ask) in outgoing.enumerated() {
                group.addTask {
                    do {
                        return (index, .success(try await session.ask(ask, onPartial: nil).payload))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var results = [Result<Payload, any Error>](repeating: .failure(CancellationError()), count: outgoing.count)
            for await (index, result) in group { results[index] = result }
            return results
        }
    }

    /// Sends `payload` to the asker at once as a partial reply; the final reply is what the handler
    /// returns. Partial replies are logged, and a replay does not compare them.
    public func partial(_ payload: Payload) {
        session.partial(payload)
    }

    /// A random number from the generator seeded by the logged message.
    public func random(in range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &generator)
    }

    /// 64 random bits from the generator seeded by the logged message.
    public func randomBits() -> UInt64 {
        generator.next()
    }

    private func makeAsk(_ service: String, _ payload: Payload, key: String?) -> OutgoingAsk {
        askCount += 1
        var headers: [String: String] = [:]
        if let key { headers[AgentMessage.keyHeader] = key }
        if reissues { headers[Envelope.reissueHeader] = "1" }
        let events = pending
        pending.removeAll()
        return OutgoingAsk(
            messageID: Identifiers.ask(message.messageID, askCount), runID: message.runID,
            causationID: message.messageID, service: service, frames: [payload.bytes], headers: headers,
            events: events)
    }

    /// Hands over the events not yet sent, for the reply.
    func takePending() -> [EmittedEvent] {
        defer { pending.removeAll() }
        return pending
    }
}
