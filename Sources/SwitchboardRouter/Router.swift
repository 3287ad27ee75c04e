// SPDX-License-Identifier: Apache-2.0
import Synchronization
public import SwitchboardLog
public import SwitchboardWire
#if canImport(Glibc)
import Glibc
#endif

/// The router: one ROUTER socket speaking MDP/0.2, the event log, and the event bus.
///
/// Each poll cycle reads up to ``RouterConfiguration/maximumBatch`` messages and lets the broker
/// state machine decide. The cycle's events go to the ``LogWriter`` thread as one batch; its
/// frames are sent, and its events published, only once that batch is committed (log before
/// forward). Meanwhile the loop goes on reading, and batches that queue up behind a commit are
/// committed together. A storage failure stops the router: nothing uncommitted was
/// acknowledged, and a restart recovers the rest.
///
/// > Important: ``run(until:onListening:)`` blocks its thread (socket I/O and fsync); give it a
/// > dedicated thread, never a task on Swift's cooperative pool.
public final class Router: Sendable {
    public let configuration: RouterConfiguration
    public let log: EventLog
    private let context: ZMQContext
    private let stopping = Atomic<Bool>(false)
    private let counters = Mutex(RouterCounters())

    public init(configuration: RouterConfiguration, log: EventLog, context: ZMQContext) {
        self.configuration = configuration
        self.log = log
        self.context = context
    }

    /// Messages dropped so far: invalid ones, and worker replies to requests no longer in flight.
    public var statistics: RouterCounters { counters.withLock { $0 } }

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
        socket.sharedFrames = MDP.headers
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
        var published = startTail
        var machine = BrokerStateMachine(configuration: configuration, idPrefix: "m\(startTail + 1).")
        machine.logAnswers = LogAnswers(log: log)
        let recovered = try RouterRecovery.recover(from: log)
        var output = BrokerStateMachine.Output()
        let now = clock.now()
        output.events.append(RouterEvents.started(endpoint: socket.lastEndpoint, recovered: recovered.pending.count,
                                                  now: now.wall))
        for (request, outcome) in recovered.answered {
            machine.rememberRecovered(request, outcome: outcome)
        }
        try machine.loadControlState(from: log, policy: configuration.policy)
        for var request in recovered.pending {
            request.attempt += 1
            request.receivedAt = now.milliseconds
            request.expiresAt = now.milliseconds + Int64(configuration.requestExpiry)
            output.events.append(RouterEvents.redelivered(request, reason: "router restart", now: now.wall))
            machine.enqueueRecovered(request, now: now, into: &output)
        }
        // The first batch (start and recovery) is committed before anything is served.
        let first = output.events.isEmpty ? [] : try log.append(output.events).events
        try send(output.early + output.sends, on: socket)
        try publish(first[...], on: publisher, published: &published)
        machine.sealBatch()
        machine.markCommitted(through: 1)
        onListening(socket.lastEndpoint, publisher?.lastEndpoint)

        let notifyEndpoint = "inproc://switchboard-log-writer-\(UInt64.random(in: 0...UInt64.max))"
        let notify = try ZMQSocket(context, type: .pair)
        try notify.bind(notifyEndpoint)
        let writer = LogWriter(log: log, context: context, endpoint: notifyEndpoint)
        writer.start()
        // Batches handed to the writer, oldest first, with the frames that wait for their commit.
        var pending: [(batch: UInt64, sends: [(identity: [UInt8], frames: [[UInt8]])])] = []
        var pendingStart = 0
        func deliverCompleted() throws {
            let (batches, failure) = writer.takeCompleted()
            for completed in batches {
                let (batch, sends) = pending[pendingStart]
                precondition(batch == completed.batch, "log writer completed batch \(completed.batch), expected \(batch)")
                pendingStart += 1
                try send(sends, on: socket)
                try publish(completed.events, on: publisher, published: &published)
                machine.markCommitted(through: batch)
            }
            if pendingStart > 256 {
                pending.removeFirst(pendingStart)
                pendingStart = 0
            }
            if let failure { throw failure }
        }
        defer {
            // Let the writer finish what it was given, and deliver it: a clean stop loses no reply.
            writer.stop()
            try? deliverCompleted()
            // Give the last replies time to leave before the sockets close.
            try? socket.setOption(.linger, 2000)
            try? publisher?.setOption(.linger, 2000)
        }

        let catchUp = CatchUpService(log: log)
        // State reads wait for the commit of everything received before them.
        var stateReads: [(batch: UInt64, identity: [UInt8], frames: [[UInt8]])] = []
        // The notifications, then the publisher (always polled), then the socket, left out while
        // too many batches await their commit.
        var poller = ZMQPoller([notify] + (publisher.map { [$0] } ?? []) + [socket])
        let socketIndex = poller.count - 1
        while !stopping.load(ordering: .relaxed) && !shouldStop() {
            let timeout = Int(min(machine.nextDeadline(now: clock.now()), 100))
            // With too many batches awaiting their commit, stop reading: peers queue in ZeroMQ meanwhile.
            let reading = pending.count - pendingStart < Self.maximumBatchesInFlight
            try poller.poll(timeout: timeout, count: reading ? poller.count : socketIndex)
            if poller.isReadable(0) {
                while try notify.receive(wait: false) != nil {}
            }
            if pending.count > pendingStart {
                // Also without a notification: a writer that failed early could not send one.
                try deliverCompleted()
            }
            var output = BrokerStateMachine.Output()
            if reading && poller.isReadable(socketIndex) {
                var count = 0
                while count < configuration.maximumBatch, let (identity, body) = try socket.receiveRouted(wait: false) {
                    count += 1
                    guard !body.isEmpty else { continue }
                    if try catchUp.handle(identity: identity, frames: body, socket: socket, published: published) {
                        continue
                    }
                    if StateService.matches(body) {
                        stateReads.append((machine.batch, identity, body))
                        continue
                    }
                    // Dispatched once for the whole cycle, by the tick below.
                    machine.receive(identity: identity, frames: body, now: clock.now(), into: &output,
                                    dispatching: false)
                }
            }
            if let publisher, poller.isReadable(1) {
                // Subscriptions arrive as messages on XPUB; they need no answer.
                while try publisher.receive(wait: false) != nil {}
            }
            machine.tick(now: clock.now(), into: &output)
            counters.withLock {
                $0.invalidMessages = machine.invalidMessages
                $0.duplicateReplies = machine.duplicateReplies
            }
            try send(output.early, on: socket)
            if !output.events.isEmpty || !output.sends.isEmpty {
                // Moved out, not shared: the writer moves the events' fields into the recorded
                // events when it holds the only reference to their array.
                var events: [NewEvent] = []
                swap(&events, &output.events)
                writer.submit(batch: machine.batch, events: events)
                pending.append((machine.batch, output.sends))
                machine.sealBatch()
            } else {
                // This cycle's batch stays empty: reads received in it wait for the one before.
                for index in stateReads.indices where stateReads[index].batch == machine.batch {
                    stateReads[index].batch -= 1
                }
            }
            if !stateReads.isEmpty {
                let ready = stateReads.filter { $0.batch <= machine.committedBatch }
                stateReads.removeAll { $0.batch <= machine.committedBatch }
                for read in ready {
                    _ = try socket.send(read.identity, StateService.reply(to: read.frames, log: log), wait: false)
                }
            }
        }
    }

    /// Batches that may wait for their commit at once before the router stops reading.
    static let maximumBatchesInFlight = 64

    private func send(_ sends: [(identity: [UInt8], frames: [[UInt8]])], on socket: ZMQSocket) throws {
        for (identity, frames) in sends where !identity.isEmpty {
            // A full peer queue drops the message, like ZeroMQ's ROUTER does; the log keeps it.
            _ = try socket.send(identity, frames, wait: false)
        }
    }

    /// Publishes committed events; `published` follows the last position delivered.
    private func publish(_ events: ArraySlice<RecordedEvent>, on publisher: ZMQSocket?, published: inout UInt64) throws {
        if let last = events.last { published = last.position }
        guard let publisher else { return }
        for event in events {
            _ = try publisher.send(EventBus.frames(for: event, source: log.cloudEventSource), wait: false)
        }
    }
}

/// What the router dropped and why; kept in memory, reported when it stops.
public struct RouterCounters: Sendable, Hashable {
    /// Messages that broke MDP/0.2 or the envelope format.
    public var invalidMessages = 0
    /// Worker replies for requests that had already finished or moved to another worker.
    public var duplicateReplies = 0
}

/// Monotonic milliseconds plus wall time, read together.
struct MonotonicClock {
    func now() -> BrokerStateMachine.Now {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return .init(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000, wall: .now)
    }
}
