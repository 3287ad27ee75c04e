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
    /// Teardowns started and finished.
    static let started = Mutex(0)
    static let finished = Mutex(0)

    deinit {
        Self.started.withLock { $0 += 1 }
        usleep(300_000)
        Self.finished.withLock { $0 += 1 }
    }
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
/// Serialized: the tests count handler runs and teardowns in shared counters.
@Suite(.serialized) struct HostMailboxTests {
    @Test func aMessageArrivingWhileTheLastTaskOfItsKeyFinishesIsHandledOnce() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://mailbox-host-\(UInt64.random(in: 0...UInt64.max))"
        let script = Task {
            try await onThread { () -> (asks: Int, finals: Int) in
                return try Self.play(FreshStateHostTests.Script(binding: endpoint, context: context))
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
        await host.shutdown()
        await serving.value
        // Counted once every handler has returned.
        let handled = SlowToFree.handled.withLock { $0 }
        #expect(handled["m1"] == 1 && handled["m2"] == 1)
        #expect(handled["ask-m3"] == 1)
    }

    @Test func aShutdownPastItsDrainTimeoutStartsNoQueuedMessage() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://mailbox-host-\(UInt64.random(in: 0...UInt64.max))"
        let script = Task {
            try await onThread { () -> Void in
                let script = try FreshStateHostTests.Script(binding: endpoint, context: context)
                try script.registered("slow-to-free")
                // The first waits on an ask never answered; the second queues behind it.
                try script.dispatch("ask-s1", key: "k")
                _ = try script.nextAsk()
                try script.dispatch("ask-s2", key: "k")
            }
        }
        let host = try AgentHost(
            types: [AgentType(SlowToFree.self)],
            configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000, drainTimeout: 300),
            context: context)
        let serving = Task { await host.run() }
        try await script.value
        // Time for the host to take the second message in before it stops taking any.
        try await Task.sleep(for: .milliseconds(300))
        await host.shutdown()
        await serving.value
        let handled = SlowToFree.handled.withLock { $0 }
        #expect(handled["ask-s1"] == 1)
        // After the DISCONNECT the router gives it to another host: started here, it would run twice.
        #expect(handled["ask-s2"] == nil)
    }

    private static func play(_ script: FreshStateHostTests.Script) throws -> (asks: Int, finals: Int) {
        try script.registered("slow-to-free")
        let (started, finished) = (SlowTeardown.started.withLock { $0 }, SlowTeardown.finished.withLock { $0 })
        try script.dispatch("m1", key: "a")
        guard try script.nextFinal().causation == "m1" else { throw TestFailure("no reply to m1") }
        try script.dispatch("m2", key: "b")
        guard try script.nextFinal().causation == "m2" else { throw TestFailure("no reply to m2") }
        // b's task passivates a's instance once m2 is done. b's next message must come while that
        // teardown holds the task: sent earlier, the task would take it and keep a's instance.
        let deadline = Date().addingTimeInterval(60)
        while SlowTeardown.started.withLock({ $0 }) == started {
            guard Date() < deadline else { throw TestFailure("a's instance was never passivated") }
            usleep(1_000)
        }
        try script.dispatch("ask-m3", key: "b")
        let ask = try script.nextAsk()
        var asks = 1
        var finals = 0
        // Past the teardown, then past the answer: a second task taking the same message would ask
        // again, or reply twice. Waits have deadlines, not fixed lengths: the machine may be busy.
        let count = { (ask: Bool, causation: String?) in
            asks += ask ? 1 : 0
            finals += causation == "ask-m3" ? 1 : 0
        }
        try Self.collect(script, until: { SlowTeardown.finished.withLock { $0 } > finished }, by: deadline, count)
        try script.answer(ask, [Array("{}".utf8)])
        try Self.collect(script, until: { finals > 0 }, by: deadline, count)
        return (asks, finals)
    }

    /// Counts what the host sends until `done` holds (or `deadline` passes), and 0.3 s after.
    private static func collect(_ script: FreshStateHostTests.Script, until done: () -> Bool, by deadline: Date,
                                _ count: (_ ask: Bool, _ causation: String?) -> Void) throws
    {
        while !done(), Date() < deadline {
            try collect(script, for: 0.05, count)
        }
        try collect(script, for: 0.3, count)
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
