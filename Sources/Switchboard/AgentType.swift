// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import SwitchboardLog
import SwitchboardWire

/// An agent type as hosts and the replayer see it, without its generic parameter.
public struct AgentType: Sendable {
    public let descriptor: AgentDescriptor
    let make: @Sendable (AgentID) -> any AgentInstance

    /// Registers `agent` under its descriptor.
    public init<A: Agent>(_ agent: A.Type) {
        descriptor = A.descriptor
        make = { id in Instance<A>(agent: A(id: id), id: id) }
    }

    /// Registers `agent` under another name or version (tests of drift, several deployments of one type).
    public init<A: Agent>(_ agent: A.Type, descriptor: AgentDescriptor) {
        self.descriptor = descriptor
        make = { id in Instance<A>(agent: A(id: id), id: id) }
    }

    /// Registers instances that `make` builds, for agents that carry configuration.
    public init<A: AgentActor>(descriptor: AgentDescriptor, make: @escaping @Sendable (AgentID) -> A) {
        self.descriptor = descriptor
        self.make = { id in Instance<A>(agent: make(id), id: id) }
    }
}

/// What handling one message produced.
struct HandlerOutcome: Sendable {
    /// The reply frames, or the error the handler threw.
    var reply: Result<[[UInt8]], AskError>
    /// Events emitted since the last ask, to travel with the reply.
    var events: [EmittedEvent]
    /// Every event the handler emitted.
    var emitted: Int
    /// Set when a replay found the handler diverging from the log.
    var divergence: ReplayDivergence?
}

/// One live agent instance.
protocol AgentInstance: Sendable {
    var id: AgentID { get }
    /// The agent's actor: code running there calls ``handle(_:now:session:logger:)`` without a hop
    /// onto it and back for each message.
    var actor: any Actor { get }
    /// Folds a snapshot and the events after it into the instance's state.
    nonisolated(nonsending) func restore(snapshot: [UInt8]?, events: [[UInt8]]) async throws
    nonisolated(nonsending) func handle(_ message: AgentMessage, now: Timestamp, session: any AgentSession,
                                        logger: Logger) async -> HandlerOutcome
    /// A snapshot event covering `version` events of the instance's stream.
    func snapshot(version: UInt64, causationID: String) async throws -> EmittedEvent
}

private struct SnapshotPayload<S: Decodable>: Decodable {
    var state: S
}

private struct Instance<A: AgentActor>: AgentInstance {
    let agent: A
    let id: AgentID

    var actor: any Actor { agent }

    nonisolated(nonsending) func restore(snapshot: [UInt8]?, events: [[UInt8]]) async throws {
        var state = A.State()
        if let snapshot {
            state = try JSONDecoder().decode(SnapshotPayload<A.State>.self, from: Data(snapshot)).state
        }
        // No decoder for a fresh instance (most of them): making one allocates.
        if !events.isEmpty {
            let decoder = JSONDecoder()
            for payload in events {
                state.apply(try decoder.decode(A.State.Event.self, from: Data(payload)))
            }
        }
        await agent.replaceState(state)
    }

    nonisolated(nonsending) func handle(_ message: AgentMessage, now: Timestamp, session: any AgentSession,
                                        logger: Logger) async -> HandlerOutcome
    {
        await agent.run(message, id: id, now: now, session: session, logger: logger)
    }

    func snapshot(version: UInt64, causationID: String) async throws -> EmittedEvent {
        let state = try Payload(json: await agent.state)
        let payload = Array("{\"version\":\(version),\"state\":".utf8) + state.bytes + [UInt8(ascii: "}")]
        return EmittedEvent(
            type: "agent.snapshot", streamID: id.streamID + "/snapshot",
            messageID: Identifiers.shortened("\(causationID)!snapshot"), causationID: causationID, payload: payload)
    }
}

extension AgentActor {
    fileprivate func replaceState(_ state: State) {
        self.state = state
    }

    /// Runs the handler on the actor with a context made there, so the context never leaves it.
    fileprivate func run(_ message: AgentMessage, id: AgentID, now: Timestamp, session: any AgentSession,
                         logger: Logger) async -> HandlerOutcome {
        let context = AgentContext(agent: self, agentID: id, message: message, now: now, session: session,
                                   logger: logger)
        let reply: Result<[[UInt8]], AskError>
        var divergence: ReplayDivergence?
        do {
            reply = .success([try await handle(message, context: context).bytes])
        } catch let error as ReplayDivergence {
            divergence = error
            reply = .failure(AskError(service: id.type, code: "divergence", message: "\(error)"))
        } catch {
            context.logger.debug("handler failed")
            reply = .failure(Self.errorReply(error, service: id.type))
        }
        return HandlerOutcome(reply: reply, events: context.takePending(), emitted: context.emitCount,
                              divergence: divergence)
    }

    /// An error a handler threw, as its error reply: an ``AskError`` keeps its code and message.
    fileprivate static func errorReply(_ error: any Error, service: String) -> AskError {
        if let error = error as? AskError {
            return AskError(service: service, code: error.code, message: error.message)
        }
        return AskError(service: service, code: "agent_error", message: "\(error)")
    }
}
