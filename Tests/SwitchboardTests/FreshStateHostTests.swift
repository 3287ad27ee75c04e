// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import SwitchboardRouter
import SwitchboardWire
import Testing
import TestSupport

@testable import Switchboard

/// Emits, then asks `svc`: a handler that can be held under way while the next message of its
/// key arrives.
actor EmitAndAsk: Agent {
    static let descriptor = AgentDescriptor(name: "emit-and-ask", version: "1")
    var state = Counter.State()

    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<EmitAndAsk>) async throws -> Payload {
        try context.emit(Counter.Added(amount: 1))
        _ = try await context.ask("svc", Payload(text: "{}"))
        return try Payload(json: ["total": state.total])
    }
}

/// An agent host against a router played by the test on a real ROUTER socket: which messages
/// marked `state.empty` it makes fresh, and which it rebuilds through `sb.state`.
@Suite struct FreshStateHostTests {
    /// The scripted router's side.
    final class Script {
        let socket: ZMQSocket
        var worker: [UInt8] = []

        init(_ socket: ZMQSocket) { self.socket = socket }

        /// A ROUTER socket bound at `endpoint`, for the host to connect to.
        convenience init(binding endpoint: String, context: ZMQContext) throws {
            let socket = try ZMQSocket(context, type: .router)
            try socket.bind(endpoint)
            self.init(socket)
        }

        /// Waits for `service`'s worker to register; requests then go to it.
        func registered(_ service: String) throws {
            let (worker, ready) = try next()
            guard case .workerReady(service, _) = ready else { throw TestFailure("no READY: \(ready)") }
            self.worker = worker
        }

        /// The next message from the host, decoded; its sender's identity first.
        func next() throws -> ([UInt8], MDPPeerMessage) {
            guard try ZMQSocket.poll([socket], timeout: 10_000) == [true], let frames = try socket.receive(),
                  case .success(let (message, _)) = MDPCodec.decodeFromPeer(Array(frames.dropFirst()))
            else { throw TestFailure("the host sent nothing decodable") }
            return (frames[0], message)
        }

        typealias Ask = (client: [UInt8], service: String, envelope: Envelope)
        typealias Final = (causation: String, body: [[UInt8]])

        /// The next ask or final reply (heartbeats skipped).
        func nextAskOrFinal() throws -> (ask: Ask?, final: Final?) {
            while true {
                let (sender, message) = try next()
                switch message {
                case .clientRequest(let service, let body):
                    return ((sender, service, try Envelope(decoding: body.first ?? [])), nil)
                case .workerFinal(_, let body):
                    return (nil, (try Envelope(decoding: body.first ?? []).causationID, Array(body.dropFirst())))
                case .workerHeartbeat:
                    continue
                default:
                    throw TestFailure("unexpected \(message)")
                }
            }
        }

        func nextAsk() throws -> Ask {
            let next = try nextAskOrFinal()
            guard let ask = next.ask else { throw TestFailure("expected an ask, got \(String(describing: next.final.map { ($0.causation, $0.body.map { String(decoding: $0, as: UTF8.self) }) }))") }
            return ask
        }

        func nextFinal() throws -> Final {
            guard let final = try nextAskOrFinal().final else { throw TestFailure("expected a final reply") }
            return final
        }

        /// Sends a request to the worker, marked `state.empty` unless it is a redelivery.
        func dispatch(_ id: String, key: String, attempt: UInt32 = 1) throws {
            var headers = ["key": key, "time": "1000000000"]
            if attempt == 1 { headers[Envelope.emptyStateHeader] = "1" }
            let envelope = Envelope(messageID: id, runID: "run-1", attempt: attempt, headers: headers)
            _ = try socket.send([worker] + MDPCodec.workerRequest(
                client: Array("c".utf8), body: [try envelope.encoded(), Array("{}".utf8)], framing: .plain))
        }

        func answer(_ ask: Ask, _ body: [[UInt8]]) throws {
            let envelope = Envelope(messageID: ask.envelope.messageID + "/final", runID: ask.envelope.runID,
                                    causationID: ask.envelope.messageID)
            _ = try socket.send([ask.client] + MDPCodec.clientReply(
                .final, service: ask.service, body: [try envelope.encoded()] + body, framing: .plain))
        }
    }

    @Test func onlyAMessageWithNoneOfItsKeyAheadIsMadeFresh() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://fresh-host-\(UInt64.random(in: 0...UInt64.max))"
        // The socket lives on the script's thread (inproc lets the host connect before it binds).
        let script = Task {
            try await onThread { () -> [String] in
                return try Self.play(Script(binding: endpoint, context: context))
            }
        }
        let host = try AgentHost(types: [AgentType(EmitAndAsk.self)],
                                 configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000), context: context)
        let serving = Task { await host.run() }
        let services = try await script.value
        let state = StateService.serviceName
        #expect(services == ["svc", #"{"total":1}"#, state, state, #"{"total":1}"#])
        await host.shutdown()
        await serving.value
    }

    private static func play(_ script: Script) throws -> [String] {
        var seen: [String] = []
        try script.registered("emit-and-ask")
        // Alone for its key: made fresh, so its first ask is `svc`, not `sb.state`.
        try script.dispatch("m0", key: "j")
        let alone = try script.nextAsk()
        seen.append(alone.service)
        try script.answer(alone, [Array("{}".utf8)])
        seen.append(String(decoding: try script.nextFinal().body.first ?? [], as: UTF8.self))

        // m1, a redelivery, rebuilds from `sb.state`; m2 of the same key, marked, waits behind it.
        try script.dispatch("m1", key: "k", attempt: 2)
        let rebuild = try script.nextAsk()
        seen.append(rebuild.service)
        try script.dispatch("m2", key: "k")
        usleep(200_000)
        // The rebuild fails, so m2 finds no cached instance and must not trust its mark: the key
        // had a message under way when the router judged it.
        try script.answer(rebuild, [])
        // m1's error reply and m2's first ask leave on different sockets: either may come first.
        var next: Script.Ask?
        var failed: Script.Final?
        while next == nil || failed == nil {
            let (ask, final) = try script.nextAskOrFinal()
            next = next ?? ask
            failed = failed ?? final
        }
        guard let next, failed?.causation == "m1" else { throw TestFailure("no reply to m1") }
        seen.append(next.service)
        // The log as the router would serve it: version 0, no snapshot, no events.
        try script.answer(next, [EventBus.position(0), []])
        try script.answer(try script.nextAsk(), [Array("{}".utf8)])
        let second = try script.nextFinal()
        guard second.causation == "m2" else { throw TestFailure("no reply to m2") }
        seen.append(String(decoding: second.body.first ?? [], as: UTF8.self))
        return seen
    }
}
