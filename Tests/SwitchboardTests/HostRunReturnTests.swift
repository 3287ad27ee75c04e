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

/// Asks a service that never answers and records how the ask ended.
actor AskingForever: Agent {
    static let descriptor = AgentDescriptor(name: "asking-forever", version: "1")
    static let outcome = Mutex<String?>(nil)
    static let started = Atomic<Int>(0)
    var state = Counter.State()

    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<AskingForever>) async throws -> Payload {
        Self.started.add(1, ordering: .relaxed)
        do {
            _ = try await context.ask("silent", Payload(text: "{}"))
            Self.outcome.withLock { $0 = "answered" }
        } catch let error as AskError {
            Self.outcome.withLock { $0 = error.code }
        }
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

    /// Cancelling the task that runs the host ends it: its workers send DISCONNECT (over TCP, so
    /// that closing the socket must not drop it), the ask a handler waits on fails with
    /// `host_stopped`, the message queued behind it is not started, and `run()` returns (a task
    /// group running the host beside a body that throws would otherwise never finish).
    @Test(.timeLimit(.minutes(2))) func cancellingTheTaskThatRunsTheHostEndsItAndItsWorkersLeave() async throws {
        let context = try ZMQContext()
        let bound = Mutex<String?>(nil)
        let asked = Atomic<Bool>(false)
        // The scripted router: takes READY, dispatches two messages of one key, takes the first
        // handler's ask and never answers it, then reads until the worker's DISCONNECT.
        let script = Task {
            try await onThread { () -> Bool in
                let socket = try ZMQSocket(context, type: .router)
                try socket.bind("tcp://127.0.0.1:*")
                bound.withLock { $0 = socket.lastEndpoint }
                var worker: [UInt8]?
                let deadline = MonotonicTime.milliseconds() + 120_000
                while MonotonicTime.milliseconds() < deadline {
                    guard try ZMQSocket.poll([socket], timeout: 100) == [true], let frames = try socket.receive()
                    else { continue }
                    guard case .success((let message, _)) = MDPCodec.decodeFromPeer(Array(frames.dropFirst()))
                    else { throw TestFailure("the host sent a malformed message") }
                    switch message {
                    case .workerReady:
                        worker = frames[0]
                        for id in ["m-1", "m-2"] {
                            let envelope = Envelope(messageID: id, runID: "run-1",
                                                    headers: ["key": "k", "time": "1000000000",
                                                              Envelope.emptyStateHeader: "1"])
                            _ = try socket.send([frames[0]] + MDPCodec.workerRequest(
                                client: Array("c".utf8), body: [try envelope.encoded(), Array("{}".utf8)],
                                framing: .plain))
                        }
                    case .clientRequest(service: "silent", _):
                        asked.store(true, ordering: .relaxed)
                    case .workerDisconnect where frames[0] == worker:
                        return true
                    default:
                        continue
                    }
                }
                return false
            }
        }
        var endpoint = ""
        let bindDeadline = ContinuousClock.now + .seconds(60)
        while endpoint.isEmpty && ContinuousClock.now < bindDeadline {
            try await Task.sleep(for: .milliseconds(5))
            endpoint = bound.withLock { $0 } ?? ""
        }
        try #require(!endpoint.isEmpty, "the scripted router did not bind")
        let host = try AgentHost(types: [AgentType(AskingForever.self)],
                                 configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000), context: context)
        let returnedOnCancel = try await Self.returnsWhenCancelled(host) {
            let deadline = ContinuousClock.now + .seconds(120)
            while !asked.load(ordering: .relaxed) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            let reached = asked.load(ordering: .relaxed)
            #expect(reached, "the handler's ask never reached the router")
        }
        #expect(returnedOnCancel, "run() did not return when its task was cancelled")
        let outcome = AskingForever.outcome.withLock { $0 }
        #expect(outcome == "host_stopped")
        let started = AskingForever.started.load(ordering: .relaxed)
        #expect(started == 1, "the message queued behind the one under way was started after the cancellation")
        let disconnected = try await script.value
        #expect(disconnected, "the workers did not send DISCONNECT when the host was cancelled")

        // Cancelled before it starts, a host registers nothing and returns at once.
        let early = try AgentHost(types: [AgentType(Echo.self)],
                                  configuration: .init(endpoint: endpoint, heartbeatInterval: 60_000), context: context)
        let returnedAtOnce = try await Self.returnsWhenCancelled(early, beforeRun: true)
        #expect(returnedAtOnce, "run() of a host cancelled before it ran did not return")
        #expect(early.registrations == 0, "a host cancelled before it ran registered anyway")
    }

    /// Runs `host` in a task and cancels the task, before `run()` or after `whileRunning`; says
    /// whether `run()` returned within 30 s. Waited for with a deadline, and a host that did not
    /// return is shut down: a host that ignores cancellation fails the test, not hangs the suite.
    static func returnsWhenCancelled(_ host: AgentHost, beforeRun: Bool = false,
                                     whileRunning: () async throws -> Void = {}) async throws -> Bool {
        let returned = Atomic<Bool>(false)
        let serving = Task {
            if beforeRun { withUnsafeCurrentTask { $0?.cancel() } }
            await host.run()
            returned.store(true, ordering: .relaxed)
        }
        if !beforeRun {
            try await whileRunning()
            serving.cancel()
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while !returned.load(ordering: .relaxed) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        let returnedInTime = returned.load(ordering: .relaxed)
        if !returnedInTime { await host.shutdown() }
        await serving.value
        return returnedInTime
    }
}
