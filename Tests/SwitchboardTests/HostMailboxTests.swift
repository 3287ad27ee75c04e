// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import SwitchboardWire
import Testing
import TestSupport

@testable import Switchboard

/// Holds the thread that frees it, as a large instance's teardown would.
final class SlowTeardown: Sendable {
    deinit { usleep(300_000) }
}

/// Asks `svc` for messages whose id starts with `ask`; its instances are slow to free.
actor SlowToFree: Agent {
    static let descriptor = AgentDescriptor(name: "slow-to-free", version: "1")
    /// Times each message was handled, by message id.
    static let handled = Mutex<[String: Int]>([:])
    var state = NoState()
    let teardown = SlowTeardown()

    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<SlowToFree>) async throws -> Payload {
        SlowToFree.handled.withLock { $0[message.messageID, default: 0] += 1 }
        if message.messageID.hasPrefix("ask") { _ = try await context.ask("svc", Payload(text: "{}")) }
        return Payload(text: "{}")
    }
}

/// An instance's messages run one at a time, each once, however its task is held between them.
@Suite struct HostMailboxTests {
    @Test func aMessageArrivingWhileTheLastTaskOfItsKeyFinishesIsHandledOnce() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://mailbox-host-\(UInt64.random(in: 0...UInt64.max))"
        let script = Task {
            try await onThread { () -> (asks: Int, finals: Int) in
                let socket = try ZMQSocket(context, type: .router)
                try socket.bind(endpoint)
                return try Self.play(FreshStateHostTests.Script(socket))
            }
        }
        // One idle instance at most: handling b's message passivates a's instance, whose teardown
        // then holds b's task after its mailbox is gone.
        let host = try AgentHost(
            types: [AgentType(SlowToFree.self)],
            configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000, maximumIdleInstances: 1),
            context: context)
        let serving = Task { await host.run() }
        let seen = try await script.value
        #expect(seen.asks == 1)
        #expect(seen.finals == 1)
        let handled = SlowToFree.handled.withLock { $0 }
        #expect(handled == ["m1": 1, "m2": 1, "ask-m3": 1])
        await host.shutdown()
        await serving.value
    }

    private static func play(_ script: FreshStateHostTests.Script) throws -> (asks: Int, finals: Int) {
        let (worker, ready) = try script.next()
        guard case .workerReady("slow-to-free", _) = ready else { throw TestFailure("no READY: \(ready)") }
        script.worker = worker
        try script.dispatch("m1", key: "a")
        guard try script.nextFinal().causation == "m1" else { throw TestFailure("no reply to m1") }
        try script.dispatch("m2", key: "b")
        guard try script.nextFinal().causation == "m2" else { throw TestFailure("no reply to m2") }
        // b's task is now freeing a's instance; its next message comes meanwhile and waits on an ask.
        try script.dispatch("ask-m3", key: "b")
        let ask = try script.nextAsk()
        var asks = 1
        var finals = 0
        // Past the teardown, then past the answer: a second task taking the same message would ask
        // again, or reply twice.
        let count = { (ask: Bool, causation: String?) in
            asks += ask ? 1 : 0
            finals += causation == "ask-m3" ? 1 : 0
        }
        try Self.collect(script, for: 0.6, count)
        try script.answer(ask, [Array("{}".utf8)])
        try Self.collect(script, for: 0.6, count)
        return (asks, finals)
    }

    /// Counts what the host sends for `seconds`: asks, and final replies by causation id.
    private static func collect(_ script: FreshStateHostTests.Script, for seconds: Double,
                                _ count: (_ ask: Bool, _ causation: String?) -> Void) throws
    {
        let deadline = Date().addingTimeInterval(seconds)
        while case let left = deadline.timeIntervalSinceNow, left > 0 {
            guard try ZMQSocket.poll([script.socket], timeout: Int(left * 1000) + 1) == [true] else { continue }
            let (ask, final) = try script.nextAskOrFinal()
            count(ask != nil, final?.causation)
        }
    }
}
