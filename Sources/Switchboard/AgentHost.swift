// SPDX-License-Identifier: Apache-2.0
public import Logging
import Synchronization
import SwitchboardLog
public import SwitchboardWire
import SwitchboardRouter
#if canImport(Glibc)
import Glibc
#endif

/// How an ``AgentHost`` behaves.
public struct AgentHostConfiguration: Sendable {
    /// The router's endpoint: `inproc://…` (same process and ZeroMQ context), `ipc://…` or `tcp://…`.
    public var endpoint: String
    /// Messages each agent type takes at once (the router's flow control; at most 1024).
    public var capacity: Int
    /// Heartbeat interval towards the router, in milliseconds.
    public var heartbeatInterval: Int
    /// Silent intervals after which the router counts as gone and the host registers again.
    public var heartbeatLiveness: Int
    /// An instance idle this long (ms) is dropped; its next message rebuilds it from the log.
    public var idleTimeout: Int
    /// Idle instances kept at most; the least recently used go first.
    public var maximumIdleInstances: Int
    /// How long a graceful shutdown waits for handlers under way (ms).
    public var drainTimeout: Int
    /// An ask unanswered this long (ms) is sent again under its id, marked `reissue`, then at
    /// doubling intervals up to a minute: the router answers a repeat from memory or its log, or
    /// attaches it to the request under way, and never calls the service again. 0: asks are sent
    /// again only when the host registers again with the router. At most an hour.
    public var askResendInterval: Int

    public init(endpoint: String, capacity: Int = 256, heartbeatInterval: Int = 2500, heartbeatLiveness: Int = 3,
                idleTimeout: Int = 60_000, maximumIdleInstances: Int = 10_000, drainTimeout: Int = 10_000,
                askResendInterval: Int = 5_000) {
        self.endpoint = endpoint
        self.capacity = max(1, min(capacity, 1024))
        self.heartbeatInterval = heartbeatInterval
        self.heartbeatLiveness = heartbeatLiveness
        self.idleTimeout = idleTimeout
        self.maximumIdleInstances = maximumIdleInstances
        self.drainTimeout = drainTimeout
        self.askResendInterval = min(max(0, askResendInterval), 3_600_000)
    }
}

/// Runs agent types in this process, as native workers of the router.
///
/// Each message goes to the instance of its ``AgentID`` (created on demand, rebuilt from its
/// logged events through the router's `sb.state`); messages to one instance are handled strictly
/// one after another, different instances in parallel. A redelivered message (attempt > 1) is
/// handled by an instance rebuilt from the log: its earlier asks are answered from the log by the
/// router, and the events it had already emitted are not logged twice.
///
/// ```swift
/// let host = try AgentHost(types: [AgentType(Echo.self)], configuration: .init(endpoint: "tcp://127.0.0.1:5555"))
/// try await host.run()   // until shutdown()
/// ```
public final class AgentHost: Sendable {
    public let configuration: AgentHostConfiguration
    private let types: [String: AgentType]
    private let connection: HostConnection
    private let logger: Logger
    private let state = Mutex(HostState())

    private struct InstanceName: Hashable {
        var type: String
        var key: String
    }

    /// Hashed once: a message looks its key up several times, in tables thousands long.
    private typealias InstanceKey = Prehashed<InstanceName>

    private struct Idle {
        var instance: Cached
        var lastUsed: Int64
        /// The registration it was used under: after a reconnect the router may have sent its key
        /// to another host meanwhile, so it is rebuilt from the log instead.
        var registration: Int
    }

    struct Cached: Sendable {
        var instance: any AgentInstance
        /// Events in the instance's stream, as far as this host knows.
        var version: UInt64
        var sinceSnapshot: Int
    }

    private struct HostState {
        var mailboxes: [InstanceKey: [HostConnection.Incoming]] = [:]
        var idle = IdleSet<InstanceKey, Idle>()
        var busy = 0
        var draining = false
        /// Cancelled: messages not yet started are dropped (the router redelivers them elsewhere).
        var leaving = false
        var handled = 0
        /// Resumed once the request stream has ended and every mailbox is empty.
        var allDrained: CheckedContinuation<Void, Never>?
    }

    /// - Parameter context: the ZeroMQ context; pass the router's for an `inproc://` endpoint.
    public init(types: [AgentType], configuration: AgentHostConfiguration, context: ZMQContext? = nil,
                logger: Logger = Logger(label: "switchboard.host", factory: { _ in SwiftLogNoOpLogHandler() }))
        throws
    {
        self.configuration = configuration
        self.types = Dictionary(types.map { ($0.descriptor.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
        connection = try HostConnection(
            context: context ?? ZMQContext(), endpoint: configuration.endpoint,
            workers: types.map {
                .init(service: $0.descriptor.name,
                      metadata: WorkerMetadata(version: $0.descriptor.version, configDigest: $0.descriptor.configDigest,
                                               capacity: configuration.capacity))
            },
            heartbeatInterval: configuration.heartbeatInterval, liveness: configuration.heartbeatLiveness,
            askResendInterval: configuration.askResendInterval)
    }

    /// The services this host serves: its agent types' names.
    public var serviceNames: [String] { types.keys.sorted() }

    /// Messages handled so far.
    public var handledCount: Int { state.withLock { $0.handled } }

    /// Times the host registered its workers with a router (1 + reconnects, per agent type).
    public var registrations: Int { connection.registrations }

    /// Serves until ``shutdown()`` or until the calling task is cancelled (then the workers leave
    /// the router at once, without a drain); returns once the handlers under way have finished.
    public func run() async {
        await withTaskCancellationHandler {
            await connection.serve { request in self.accept(request) }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { state in
                    if state.mailboxes.isEmpty { return true }
                    state.allDrained = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state in
                state.draining = true
                state.leaving = true
            }
        }
    }

    /// Puts a request in its instance's mailbox; starts the instance's task when it was idle.
    /// Called on the connection's I/O thread, in the order the router sent the requests.
    private func accept(_ request: HostConnection.Incoming) {
        guard let type = types[request.service] else { return }
        let key = InstanceKey(InstanceName(type: request.service, key: request.message.key))
        let start = state.withLock { state -> Bool in
            // Draining: not started; the router hands it to another host after DISCONNECT.
            guard !state.draining else { return false }
            state.busy += 1
            if var mailbox = state.mailboxes.removeValue(forKey: key) {
                // The router judged the key empty as it sent this; a message ahead of it
                // here may still be under way (one the router had given up on).
                var queued = request
                queued.stateIsEmpty = false
                mailbox.append(queued)
                state.mailboxes[key] = mailbox
                return false
            }
            state.mailboxes[key] = [request]
            return true
        }
        // One unstructured task per busy instance, not a task group: removing a finished child
        // from a group walks its list of children, hundreds long under load.
        if start {
            Task { await self.drain(key, type: type) }
        }
    }

    /// Stops taking messages, waits for handlers under way (up to the drain timeout), then leaves
    /// the router; messages it had not started are redelivered to other hosts.
    public func shutdown() async {
        state.withLock { $0.draining = true }
        let deadline = MonotonicTime.milliseconds() + Int64(configuration.drainTimeout)
        while state.withLock({ $0.busy > 0 }) && MonotonicTime.milliseconds() < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        // Messages queued behind a handler still running past the timeout are not started: after
        // the DISCONNECT the router hands them to another host.
        state.withLock { $0.leaving = true }
        connection.disconnectWorkers()
        await connection.stop()
    }

    /// Handles the messages of one instance in order until its mailbox is empty.
    private func drain(_ key: InstanceKey, type: AgentType) async {
        let registration = connection.registrations
        // The cached instance and the first message under one hold of the lock the I/O thread waits for.
        var (cached, next, drained) = state.withLock { state in
            // Not after a re-registration, nor past the idle timeout: the router may have moved the key meanwhile.
            let cached = state.idle.take(key).flatMap { idle in
                idle.registration == registration
                    && MonotonicTime.milliseconds() - idle.lastUsed < Int64(configuration.idleTimeout) ? idle.instance : nil
            }
            let (next, drained) = Self.next(of: key, in: &state)
            return (cached, next, drained)
        }
        drained?.resume()
        let id = AgentID(type: key.value.type, key: key.value.key)
        while let request = next {
            let message = request.message
            var body: [[UInt8]]
            do {
                // A redelivery starts from the log: what this instance did before may be half done.
                // A cache ahead of a log the router found empty holds events never logged: the log wins.
                let current = if let cached, message.attempt == 1, !(request.stateIsEmpty && cached.version > 0) {
                    cached
                } else if request.stateIsEmpty && message.attempt == 1 {
                    try await fresh(type: type, id: id)
                } else {
                    try await rebuild(type: type, id: id, excluding: message.attempt > 1 ? message : nil)
                }
                (body, cached) = try await handle(request, with: current, type: type)
            } catch {
                cached = nil
                let failure = AskError(service: key.value.type, code: "agent_error", message: "\(error)")
                body = [(try? Self.replyEnvelope(to: message, error: true).encoded()) ?? [], failure.body]
            }
            connection.reply(to: request, body: body)
            let now = MonotonicTime.milliseconds()
            var dropped: [Idle] = []
            // The message done and the next one taken under one hold: once the mailbox is empty and
            // gone, a message the I/O thread puts in a new one belongs to the task it starts for it.
            (next, drained) = state.withLock { state in
                state.busy -= 1
                state.handled += 1
                // Taken out and put back if not empty: `mailboxes[key]?.removeFirst()` runs nested
                // modify accessors, which allocate on every call.
                guard var mailbox = state.mailboxes.removeValue(forKey: key) else { return (nil, nil) }
                mailbox.removeFirst()
                guard mailbox.isEmpty else {
                    state.mailboxes[key] = mailbox
                    return Self.next(of: key, in: &state)
                }
                if let cached {
                    state.idle.park(Idle(instance: cached, lastUsed: now, registration: registration), under: key)
                }
                passivate(&state, now: now, into: &dropped)
                return (nil, Self.takeAllDrained(&state))
            }
            // Passivated instances are freed here, not under the lock the I/O thread waits for.
            dropped.removeAll()
            drained?.resume()
        }
    }

    /// The next message of `key`'s mailbox, and the continuation to resume once every mailbox is
    /// empty. No message once the host is leaving: the messages not yet started are dropped, as
    /// the router redelivers them elsewhere after the workers' DISCONNECT.
    private static func next(of key: InstanceKey, in state: inout HostState)
        -> (HostConnection.Incoming?, CheckedContinuation<Void, Never>?)
    {
        guard state.leaving else { return (state.mailboxes[key]?.first, nil) }
        if let left = state.mailboxes.removeValue(forKey: key) { state.busy -= left.count }
        return (nil, takeAllDrained(&state))
    }

    /// The continuation waiting for every mailbox to empty, taken out, once they have.
    private static func takeAllDrained(_ state: inout HostState) -> CheckedContinuation<Void, Never>? {
        guard state.mailboxes.isEmpty, let waiting = state.allDrained else { return nil }
        state.allDrained = nil
        return waiting
    }

    /// Takes out the least recently used idle instances past the maximum, and those idle too long.
    private func passivate(_ state: inout HostState, now: Int64, into dropped: inout [Idle]) {
        let timeout = Int64(configuration.idleTimeout)
        let most = configuration.maximumIdleInstances
        state.idle.dropOldest(into: &dropped) { oldest, count in count > most || now - oldest.lastUsed >= timeout }
    }

    /// Handles one message; returns the reply body and the instance's bookkeeping after it.
    private func handle(_ request: HostConnection.Incoming, with instance: Cached, type: AgentType) async throws
        -> (body: [[UInt8]], instance: Cached)
    {
        let message = request.message
        var current = instance
        let timeHeader = message.headers["time"].flatMap(Int64.init)
        let now = message.handlerTime(received: timeHeader.map(Timestamp.init(nanosecondsSinceEpoch:)) ?? .now)
        let session = LiveSession(connection: connection, request: request)
        let outcome = await current.instance.handle(message, now: now, session: session, logger: logger)
        var events = outcome.events
        current.version += UInt64(outcome.emitted)
        current.sinceSnapshot += outcome.emitted
        var envelope = Self.replyEnvelope(to: message, error: false)
        let payload: [[UInt8]]
        switch outcome.reply {
        case .success(let frames):
            payload = frames
            if current.sinceSnapshot >= type.descriptor.snapshotInterval {
                events.append(try await current.instance.snapshot(version: current.version,
                                                                  causationID: message.messageID))
                current.sinceSnapshot = 0
            }
        case .failure(let error):
            envelope.headers["status"] = "error"
            payload = [error.body]
        }
        return (try Self.body(envelope, payload, events), current)
    }

    /// The envelope (announcing the events, when there are any), the frames and the events of a
    /// message, in one array sized once.
    static func body(_ envelope: Envelope, _ frames: [[UInt8]], _ events: [EmittedEvent]) throws -> [[UInt8]] {
        var envelope = envelope
        if !events.isEmpty { envelope.headers[EmittedEvent.headerName] = String(events.count) }
        var body: [[UInt8]] = []
        body.reserveCapacity(1 + frames.count + events.count)
        body.append(try envelope.encoded())
        body.append(contentsOf: frames)
        for event in events { body.append(try event.encoded()) }
        return body
    }

    private static func replyEnvelope(to message: AgentMessage, error: Bool) -> Envelope {
        var envelope = Envelope(messageID: Identifiers.reply(message.messageID), runID: message.runID,
                                causationID: message.messageID)
        if error { envelope.headers["status"] = "error" }
        return envelope
    }

    /// A new instance of a key whose stream the router found empty: what `sb.state` would give.
    private func fresh(type: AgentType, id: AgentID) async throws -> Cached {
        try await restored(type: type, id: id, version: 0, snapshot: nil, events: [])
    }

    /// A fresh instance with its state folded from the log (the router's `sb.state`).
    private func rebuild(type: AgentType, id: AgentID, excluding message: AgentMessage?) async throws -> Cached {
        var frames = [Array(id.streamID.utf8)]
        if let message { frames.append(Array(message.messageID.utf8)) }
        let reply = try await connection.ask(
            OutgoingAsk(messageID: "state-\(UInt64.random(in: 0...UInt64.max))", runID: "", causationID: "",
                        service: StateService.serviceName, frames: frames, headers: [:], events: []),
            onPartial: nil)
        guard reply.frames.count >= 2, let version = EventBus.decodePosition(reply.frames[0]) else {
            throw AskError(service: StateService.serviceName, code: "bad_reply", message: "malformed sb.state reply")
        }
        let snapshot = reply.frames[1].isEmpty ? nil : try EmittedEvent(decoding: reply.frames[1]).payload
        let events = try reply.frames.dropFirst(2).map { try EmittedEvent(decoding: $0).payload }
        return try await restored(type: type, id: id, version: version, snapshot: snapshot, events: events)
    }

    private func restored(type: AgentType, id: AgentID, version: UInt64, snapshot: [UInt8]?, events: [[UInt8]])
        async throws -> Cached {
        let instance = type.make(id)
        try await instance.restore(snapshot: snapshot, events: events)
        return Cached(instance: instance, version: version, sinceSnapshot: events.count)
    }
}

/// Asks through the router.
struct LiveSession: AgentSession {
    let connection: HostConnection
    let request: HostConnection.Incoming

    nonisolated(nonsending) func ask(_ ask: OutgoingAsk, onPartial: (@Sendable (Payload) -> Void)?) async throws
        -> AskReply {
        try await connection.ask(ask, onPartial: onPartial)
    }

    func partial(_ payload: Payload) {
        connection.reply(to: request, body: [payload.bytes], final: false)
    }
}
