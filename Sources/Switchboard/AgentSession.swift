// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwitchboardWire

/// An ask as the context hands it to its session: live (through the router) or replayed (from the log).
struct OutgoingAsk: Sendable {
    var messageID: String
    var runID: String
    var causationID: String
    var service: String
    var frames: [[UInt8]]
    var headers: [String: String]
    /// Events emitted since the agent's last outgoing message; they travel with this one.
    var events: [EmittedEvent]
}

/// A reply to an ask: its final payload and any partial replies before it.
public struct AskReply: Sendable, Hashable {
    public var payload: Payload
    public var frames: [[UInt8]]
    public var partials: [Payload]
}

/// An ask answered with an error: by the router (unknown service, expired, …) or by the service.
public struct AskError: Error, Sendable, Hashable, CustomStringConvertible {
    public var service: String
    public var code: String
    public var message: String

    public init(service: String, code: String, message: String) {
        self.service = service
        self.code = code
        self.message = message
    }

    public var description: String { "\(service) answered \(code): \(message)" }

    /// The JSON body of an error reply.
    var body: [UInt8] {
        (try? Payload(json: ["error": code, "message": message]).bytes) ?? []
    }

    /// Parses an error reply's body; nil when the reply is not an error (its envelope's `status`).
    init?(service: String, status: String?, frames: [[UInt8]]) {
        guard status == "error" else { return nil }
        struct Body: Decodable {
            var error: String
            var message: String?
        }
        let body = frames.first.flatMap { try? JSONDecoder().decode(Body.self, from: Data($0)) }
        self.init(service: service, code: body?.error ?? "error", message: body?.message ?? "")
    }
}

/// Where a context's asks go.
protocol AgentSession: Sendable {
    /// Runs on the asking handler's actor until it waits: a hop off the actor and back for each ask
    /// costs more than an ask a replay answers from the log.
    nonisolated(nonsending) func ask(_ ask: OutgoingAsk, onPartial: (@Sendable (Payload) -> Void)?) async throws
        -> AskReply
    /// Sends a partial reply to the message being handled.
    func partial(_ payload: Payload)
    /// Whether emitted events need their ids made: the log needs them, while a replay compares
    /// events by type and payload, and their ids follow from the message's anyway.
    var namesEvents: Bool { get }
}

extension AgentSession {
    /// Replays compare asks, events and replies; partial replies go nowhere.
    func partial(_ payload: Payload) {}

    var namesEvents: Bool { true }
}
