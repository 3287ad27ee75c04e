// SPDX-License-Identifier: Apache-2.0
import SwitchboardWire
import Testing
import TestSupport

@testable import Switchboard

/// A router that restarted knows none of a host's workers and answers their next message with
/// DISCONNECT; what it had not committed (an ask, say) is gone. Played on a real ROUTER socket.
@Suite struct HostDisconnectTests {
    @Test func aHostToldToDisconnectRegistersAgainAndAsksItsOpenAsksAgain() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://host-disconnect-\(UInt64.random(in: 0...UInt64.max))"
        let script = Task {
            try await onThread { () -> Seen in
                return try Self.play(FreshStateHostTests.Script(binding: endpoint, context: context))
            }
        }
        // Heartbeats a minute apart: only the DISCONNECT can make the host register again.
        let host = try AgentHost(types: [AgentType(EmitAndAsk.self)],
                                 configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000), context: context)
        let serving = Task { await host.run() }
        let seen = try await script.value
        #expect(seen.again == seen.first, "the ask asked again is not the same ask")
        #expect(!seen.firstReissued && seen.againReissued, "only the repeat is marked reissue")
        #expect(seen.final == #"{"total":1}"#)
        #expect(host.registrations == 2)
        await host.shutdown()
        await serving.value
    }

    struct Seen: Sendable {
        var first: String
        var again: String
        var final: String
        var firstReissued: Bool
        var againReissued: Bool
    }

    private static func play(_ script: FreshStateHostTests.Script) throws -> Seen {
        try script.registered("emit-and-ask")
        try script.dispatch("m0", key: "j")
        let ask = try script.nextAsk()
        // The ask is lost with the router: a new one says DISCONNECT to the worker.
        _ = try script.socket.send([script.worker] + MDPCodec.workerSignal(.disconnect, framing: .plain))
        var registered = false
        var again: FreshStateHostTests.Script.Ask?
        while !registered || again == nil {
            let (sender, message) = try script.next()
            switch message {
            case .workerReady("emit-and-ask", _):
                registered = true
                script.worker = sender
            case .clientRequest(let service, let body):
                again = (sender, service, try Envelope(decoding: body.first ?? []))
            case .workerHeartbeat:
                continue
            default:
                throw TestFailure("unexpected \(message)")
            }
        }
        guard let again else { throw TestFailure("the ask was not asked again") }
        try script.answer(again, [Array("{}".utf8)])
        let final = try script.nextFinal()
        guard final.causation == "m0" else { throw TestFailure("no reply to m0") }
        return Seen(first: ask.envelope.messageID, again: again.envelope.messageID,
                    final: String(decoding: final.body.first ?? [], as: UTF8.self),
                    firstReissued: ask.envelope.headers[Envelope.reissueHeader] != nil,
                    againReissued: again.envelope.headers[Envelope.reissueHeader] == "1")
    }

    /// An ask unanswered past the resend interval is sent again, marked `reissue` (its answer may
    /// have gone to another host asking under the same id), until answered; the answer to either
    /// copy ends the wait.
    @Test func anAskUnansweredForAWhileIsAskedAgainUntilAnswered() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://host-resend-\(UInt64.random(in: 0...UInt64.max))"
        let script = Task {
            try await onThread { () -> (asks: [FreshStateHostTests.Script.Ask], final: String) in
                let script = try FreshStateHostTests.Script(binding: endpoint, context: context)
                try script.registered("emit-and-ask")
                try script.dispatch("m0", key: "j")
                // Unanswered: the first copy and two repeats.
                var asks = [try script.nextAsk()]
                while asks.count < 3 { asks.append(try script.nextAsk()) }
                try script.answer(asks[1], [Array("{}".utf8)])
                let final = try script.nextFinal()
                guard final.causation == "m0" else { throw TestFailure("no reply to m0") }
                return (asks, String(decoding: final.body.first ?? [], as: UTF8.self))
            }
        }
        // Heartbeats a minute apart: the repeats come from the resend interval alone.
        let host = try AgentHost(types: [AgentType(EmitAndAsk.self)],
                                 configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000,
                                                      askResendInterval: 200), context: context)
        let serving = Task { await host.run() }
        let seen = try await script.value
        #expect(Set(seen.asks.map(\.envelope.messageID)).count == 1, "the repeats are not the same ask")
        #expect(seen.asks.map { $0.envelope.headers[Envelope.reissueHeader] } == [nil, "1", "1"])
        #expect(seen.final == #"{"total":1}"#)
        #expect(host.registrations == 1)
        await host.shutdown()
        await serving.value
    }
}
