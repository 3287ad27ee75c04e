// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SwitchboardWire
import Testing
import TestSupport

@testable import Switchboard

/// Holds its handler under way until the test opens the gate.
actor HeldHandler: Agent {
    static let descriptor = AgentDescriptor(name: "held-handler", version: "1")
    static let started = Atomic<Int>(0)
    static let gate = Atomic<Bool>(false)
    static let finished = Atomic<Int>(0)
    var state = Counter.State()

    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<HeldHandler>) async throws -> Payload {
        Self.started.add(1, ordering: .relaxed)
        while !Self.gate.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(5)) }
        Self.finished.add(1, ordering: .relaxed)
        return Payload(text: "{}")
    }
}

/// `AgentHost.run()` returns only once the handlers under way have finished, even when the host
/// has already left the router (a drain timeout shorter than a handler).
@Suite struct HostRunReturnTests {
    @Test func runWaitsForEveryHandlerUnderWayAfterTheConnectionStops() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://held-host-\(UInt64.random(in: 0...UInt64.max))"
        let stopScript = Atomic<Bool>(false)
        // The scripted router: takes READY, dispatches one message per key to three keys, then
        // reads whatever comes until told to stop.
        let script = Task {
            try await onThread { () -> Int in
                let socket = try ZMQSocket(context, type: .router)
                try socket.bind(endpoint)
                // Generous: under a loaded test run the host may take a while to start.
                guard try ZMQSocket.poll([socket], timeout: 120_000) == [true], let ready = try socket.receive()
                else { throw TestFailure("no READY from the host") }
                for key in ["a", "b", "c"] {
                    let envelope = Envelope(messageID: "m-\(key)", runID: "run-\(key)",
                                            headers: ["key": key, "time": "1000000000", Envelope.emptyStateHeader: "1"])
                    _ = try socket.send([ready[0]] + MDPCodec.workerRequest(
                        client: Array("c".utf8), body: [try envelope.encoded(), Array("{}".utf8)], framing: .plain))
                }
                var received = 0
                while !stopScript.load(ordering: .relaxed) {
                    if try ZMQSocket.poll([socket], timeout: 50) == [true], try socket.receive() != nil { received += 1 }
                }
                return received
            }
        }
        let host = try AgentHost(types: [AgentType(HeldHandler.self)],
                                 configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000, drainTimeout: 100),
                                 context: context)
        let returned = Atomic<Bool>(false)
        let serving = Task {
            await host.run()
            returned.store(true, ordering: .relaxed)
            return HeldHandler.finished.load(ordering: .relaxed)
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while HeldHandler.started.load(ordering: .relaxed) < 3 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        let started = HeldHandler.started.load(ordering: .relaxed)
        #expect(started == 3)
        // The drain timeout passes with all three handlers still held: the host leaves the router.
        await host.shutdown()
        try await Task.sleep(for: .milliseconds(300))
        let returnedEarly = returned.load(ordering: .relaxed)
        #expect(!returnedEarly, "run() returned with three handlers under way")
        HeldHandler.gate.store(true, ordering: .relaxed)
        let finishedWhenReturned = await serving.value
        #expect(finishedWhenReturned == 3)
        stopScript.store(true, ordering: .relaxed)
        _ = try await script.value
    }

    /// A host shut down before it runs, or while it starts, stops at once: no thread of Swift's
    /// pool waits on an I/O thread that never started or missed its wake-up.
    @Test(.timeLimit(.minutes(2))) func shutdownBeforeOrWhileRunStartsReturns() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://unstarted-host-\(UInt64.random(in: 0...UInt64.max))"
        let early = try AgentHost(types: [AgentType(Echo.self)],
                                  configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000), context: context)
        await early.shutdown()
        await early.run()
        #expect(early.registrations == 0, "a host shut down before it ran registered anyway")
        for _ in 0..<50 {
            let host = try AgentHost(types: [AgentType(Echo.self)],
                                     configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000),
                                     context: context)
            let serving = Task { await host.run() }
            await host.shutdown()
            await serving.value
        }
    }
}
