// SPDX-License-Identifier: Apache-2.0
import Synchronization
public import SwitchboardLog
public import SwitchboardWire
#if canImport(Glibc)
import Glibc
#endif

/// The router: one ROUTER socket speaking MDP/0.2, the event log, and the event bus.
///
/// Each poll cycle reads up to ``RouterConfiguration/maximumBatch`` messages, lets the broker
/// state machine decide, commits every resulting event in one write transaction, and only then
/// sends the cycle's frames and publishes its events (log before forward). A storage failure
/// stops the router: nothing uncommitted was acknowledged, and a restart recovers the rest.
///
/// > Important: ``run(until:onListening:)`` blocks its thread (socket I/O and fsync); give it a
/// > dedicated thread, never a task on Swift's cooperative pool.
public final class Router: Sendable {
    public let configuration: RouterConfiguration
    public let log: EventLog
    private let context: ZMQContext
    private let stopping = Atomic<Bool>(false)

    public init(configuration: RouterConfiguration, log: EventLog, context: ZMQContext) {
        self.configuration = configuration
        self.log = log
        self.context = context
    }

    /// Asks a running router to return from `run` within one poll interval.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
    }

    /// Binds, recovers unanswered requests from the log, then serves until `stop()` or `shouldStop`.
    /// - Parameter onListening: called once bound, with the router and event-bus endpoints as bound
    ///   (a `tcp://…:*` endpoint shows the port the OS chose).
    @available(*, noasync)
    public func run(until shouldStop: () -> Bool = { false }, onListening: (String, String?) -> Void = { _, _ in })
        throws
    {
        let socket = try ZMQSocket(context, type: .router)
        // Bounded: ZeroMQ holds at most this many messages per peer; past it a peer's messages are dropped.
        try socket.setOption(.sendHighWaterMark, 100_000)
        try socket.setOption(.receiveHighWaterMark, 100_000)
        try socket.setOption(.maximumMessageSize, int64: Int64(configuration.maximumBodySize + (64 << 10)))
        try socket.bind(configuration.endpoint)
        var publisher: ZMQSocket?
        if let events = configuration.eventsEndpoint {
            let xpub = try ZMQSocket(context, type: .xpub)
            try xpub.setOption(.sendHighWaterMark, 100_000)
            try xpub.bind(events)
            publisher = xpub
        }

        let clock = MonotonicClock()
        let startTail = try log.tail()
        var machine = BrokerStateMachine(configuration: configuration, idPrefix: "m\(startTail + 1).")
        let recovered = try RouterRecovery.recover(from: log)
        var output = BrokerStateMachine.Output()
        let now = clock.now()
        output.events.append(RouterEvents.started(endpoint: socket.lastEndpoint, recovered: recovered.pending.count,
                                                  now: now.wall))
        for (request, outcome) in recovered.answered {
            machine.rememberRecovered(request, outcome: outcome)
        }
        for var request in recovered.pending {
            request.attempt += 1
            request.receivedAt = now.milliseconds
            request.expiresAt = now.milliseconds + Int64(configuration.requestExpiry)
            output.events.append(RouterEvents.redelivered(request, reason: "router restart", now: now.wall))
            machine.enqueueRecovered(request)
        }
        try commitAndSend(&output, machine: &machine, socket: socket, publisher: publisher)
        onListening(socket.lastEndpoint, publisher?.lastEndpoint)

        let catchUp = CatchUpService(log: log)
        while !stopping.load(ordering: .relaxed) && !shouldStop() {
            let timeout = Int(min(machine.nextDeadline(now: clock.now().milliseconds), 100))
            let readable = try ZMQSocket.poll([socket] + (publisher.map { [$0] } ?? []), timeout: timeout)
            var output = BrokerStateMachine.Output()
            if readable[0] {
                var count = 0
                while count < configuration.maximumBatch, let frames = try socket.receive(wait: false) {
                    count += 1
                    let now = clock.now()
                    guard frames.count >= 2, let identity = frames.first else { continue }
                    let body = Array(frames.dropFirst())
                    if try catchUp.handle(identity: identity, frames: body, socket: socket) { continue }
                    machine.receive(identity: identity, frames: body, now: now, into: &output)
                }
            }
            if readable.count > 1, let publisher {
                // Subscriptions arrive as messages on XPUB; they need no answer.
                while try publisher.receive(wait: false) != nil {}
            }
            machine.tick(now: clock.now(), into: &output)
            try commitAndSend(&output, machine: &machine, socket: socket, publisher: publisher)
        }
    }

    private func commitAndSend(
        _ output: inout BrokerStateMachine.Output, machine: inout BrokerStateMachine, socket: ZMQSocket,
        publisher: ZMQSocket?
    ) throws {
        for (identity, frames) in output.early {
            _ = try socket.send([identity] + frames, wait: false)
        }
        var committed: [RecordedEvent] = []
        if !output.events.isEmpty {
            committed = try log.append(output.events).events
        }
        machine.endCycle()
        for (identity, frames) in output.sends {
            // A full peer queue drops the message, like ZeroMQ's ROUTER does; the log keeps it.
            _ = try socket.send([identity] + frames, wait: false)
        }
        if let publisher {
            for event in committed {
                _ = try publisher.send(EventBus.frames(for: event, source: log.cloudEventSource), wait: false)
            }
        }
        output = BrokerStateMachine.Output()
    }
}

/// Monotonic milliseconds plus wall time, read together.
struct MonotonicClock {
    func now() -> BrokerStateMachine.Now {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return .init(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000, wall: .now)
    }
}
