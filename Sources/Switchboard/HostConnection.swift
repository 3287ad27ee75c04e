// SPDX-License-Identifier: Apache-2.0
import Synchronization
import SwitchboardWire

/// An agent host's link to the router: one I/O thread owns every socket (ZeroMQ sockets are not
/// thread-safe, and blocking polls must stay off Swift's cooperative pool).
///
/// - One DEALER per agent type speaks the MDP worker protocol, with READY metadata (version, config
///   digest, capacity), heartbeats, and a fresh socket when the router goes silent or says DISCONNECT.
/// - One DEALER with a fixed routing id is the client for asks, which may be many in flight,
///   correlated by message id. When a worker socket reconnects (the router restarted) every ask
///   still waiting is sent again with its id, and so is an ask unanswered for a while (its answer
///   may have gone to another host that asked it too), marked `reissue`: the router answers it
///   from memory or its log, or attaches it to the request it already has.
/// - Tasks hand outgoing messages over through a queue and wake the thread on an `inproc` PAIR.
final class HostConnection: Sendable {
    struct Incoming: Sendable {
        var service: String
        var client: [UInt8]
        /// Built once: the host reads it several times per request.
        let message: AgentMessage
        /// The router found no event of the target instance's stream (taken off the headers, which
        /// replay does not have).
        var stateIsEmpty = false

        init(service: String, client: [UInt8], envelope: Envelope, frames: [[UInt8]], stateIsEmpty: Bool = false) {
            self.service = service
            self.client = client
            message = AgentMessage(messageID: envelope.messageID, runID: envelope.runID,
                                   causationID: envelope.causationID, attempt: envelope.attempt, frames: frames,
                                   headers: envelope.headers)
            self.stateIsEmpty = stateIsEmpty
        }
    }

    struct WorkerSpec: Sendable {
        var service: String
        var metadata: WorkerMetadata
    }

    private enum Command {
        case ask(messageID: String, frames: [[UInt8]])
        case reply(service: String, frames: [[UInt8]])
        case disconnect
    }

    private struct Waiter {
        var service: String
        var frames: [[UInt8]]
        var continuation: CheckedContinuation<AskReply, any Error>
        var partials: [Payload] = []
        var onPartial: (@Sendable (Payload) -> Void)?
        /// When it is sent again unanswered, and the wait before that (doubling up to a minute).
        var resendAt: Int64 = .max
        var interval: Int64 = 0
        /// `frames` carry the `reissue` header (sent again at least once).
        var reissued = false
    }

    private struct Outbox {
        var commands: [Command] = []
        var wake: ZMQSocket
        var stopping = false
        var started = false
    }

    /// Whether the I/O thread has ended, and who waits for it.
    private struct Ending {
        var ended = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let context: ZMQContext
    private let endpoint: String
    private let workers: [WorkerSpec]
    private let heartbeatInterval: Int
    private let liveness: Int
    private let askResendInterval: Int
    private let wakeEndpoint: String
    private let outbox: Mutex<Outbox>
    private let waiters = Mutex<[String: Waiter]>([:])
    private let ending = Mutex(Ending())
    private let clientIdentity: [UInt8]
    private let registrationCount = Atomic<Int>(0)

    /// - Parameters:
    ///   - endpoint: the router's endpoint.
    ///   - workers: one worker registration per agent type.
    ///   - askResendInterval: an ask unanswered this long (ms) is sent again; 0: only on reconnect.
    init(context: ZMQContext, endpoint: String, workers: [WorkerSpec], heartbeatInterval: Int, liveness: Int,
         askResendInterval: Int = 5_000) throws {
        self.context = context
        self.endpoint = endpoint
        self.workers = workers
        self.heartbeatInterval = heartbeatInterval
        self.liveness = liveness
        self.askResendInterval = askResendInterval
        wakeEndpoint = "inproc://switchboard-host-\(UInt64.random(in: 0...UInt64.max))"
        clientIdentity = Array("host-\(UInt64.random(in: 0...UInt64.max))".utf8)
        let wake = try ZMQSocket(context, type: .pair)
        try wake.bind(wakeEndpoint)
        outbox = Mutex(Outbox(wake: wake))
    }

    /// Worker registrations so far (READY sent), across reconnects.
    var registrations: Int { registrationCount.load(ordering: .relaxed) }

    /// Runs the I/O thread until ``stop()`` or the calling task's cancellation, unless one came
    /// first; returns once it has ended. Cancelled, the workers leave the router first, so what
    /// this host holds is redelivered at once rather than after the heartbeat expiry.
    /// - Parameter onRequest: called on the I/O thread with each request, in the order received.
    ///   It must not block: a stream between the thread and a task would cost a task switch and
    ///   a few allocations per request.
    func serve(onRequest: @escaping @Sendable (Incoming) -> Void) async {
        await withTaskCancellationHandler {
            let start = outbox.withLock { outbox in
                defer { outbox.started = true }
                return !outbox.stopping && !outbox.started
            }
            guard start else { return }
            DetachedThread { self.run(onRequest: onRequest) }.start()
            await ended()
        } onCancel: {
            requestStop(leaving: true)
        }
    }

    /// Sends an ask and waits for its FINAL.
    nonisolated(nonsending) func ask(_ ask: OutgoingAsk, onPartial: (@Sendable (Payload) -> Void)?) async throws
        -> AskReply {
        let envelope = Envelope(messageID: ask.messageID, runID: ask.runID, causationID: ask.causationID,
                                headers: ask.headers)
        let body = try AgentHost.body(envelope, ask.frames, ask.events)
        let frames = MDPCodec.clientRequest(service: ask.service, body: body)
        let interval = Int64(askResendInterval)
        let resendAt = interval > 0 ? MonotonicTime.milliseconds() + interval : .max
        return try await withCheckedThrowingContinuation { continuation in
            let duplicate = waiters.withLock { waiters in
                if waiters[ask.messageID] != nil { return true }
                waiters[ask.messageID] = Waiter(service: ask.service, frames: frames, continuation: continuation,
                                                onPartial: onPartial, resendAt: resendAt, interval: interval)
                return false
            }
            if duplicate {
                continuation.resume(throwing: AskError(service: ask.service, code: "duplicate_ask",
                                                       message: "ask \(ask.messageID) is already waiting"))
                return
            }
            // Whoever takes the waiter out resumes it: the I/O thread, ending, may have already.
            if !submit(.ask(messageID: ask.messageID, frames: frames)),
               waiters.withLock({ $0.removeValue(forKey: ask.messageID) }) != nil
            {
                continuation.resume(throwing: AskError(service: ask.service, code: "host_stopped",
                                                       message: "the agent host has stopped"))
            }
        }
    }

    /// Sends a worker's PARTIAL or FINAL for `request`.
    func reply(to request: Incoming, body: [[UInt8]], final: Bool = true) {
        let frames = MDPCodec.workerReply(final ? .workerFinal : .workerPartial, client: request.client, body: body,
                                          framing: .plain)
        _ = submit(.reply(service: request.service, frames: frames))
    }

    /// Tells the router every worker leaves (what it still holds is redelivered elsewhere).
    func disconnectWorkers() {
        _ = submit(.disconnect)
    }

    /// Stops the I/O thread and waits for it to end (suspended, not blocking a thread of Swift's
    /// pool, which the I/O thread's last handlers may need); asks still waiting fail.
    func stop() async {
        guard requestStop(leaving: false) else { return }
        await ended()
    }

    /// Tells the I/O thread to end after the commands queued so far (and, `leaving`, a DISCONNECT
    /// of every worker); returns whether the thread was started. Synchronous, for a cancellation handler.
    @discardableResult
    private func requestStop(leaving: Bool) -> Bool {
        outbox.withLock { outbox in
            if !outbox.stopping {
                if leaving { outbox.commands.append(.disconnect) }
                _ = try? outbox.wake.send([[0]], wait: false)
            }
            outbox.stopping = true
            return outbox.started
        }
    }

    /// Returns once the I/O thread has ended.
    private func ended() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ended = ending.withLock { ending in
                if !ending.ended { ending.waiting.append(continuation) }
                return ending.ended
            }
            if ended { continuation.resume() }
        }
    }

    private func submit(_ command: Command) -> Bool {
        outbox.withLock { outbox in
            guard !outbox.stopping else { return false }
            outbox.commands.append(command)
            // One wake-up byte is enough however many commands wait; a full pipe already wakes it.
            if outbox.commands.count == 1 { _ = try? outbox.wake.send([[1]], wait: false) }
            return true
        }
    }

    // MARK: - The I/O thread

    /// A DEALER that shares MDP's header frames instead of allocating them for every message.
    private func dealer() throws -> ZMQSocket {
        let socket = try ZMQSocket(context, type: .dealer)
        socket.sharedFrames = MDP.headers
        return socket
    }

    private final class WorkerSocket {
        let spec: WorkerSpec
        var socket: ZMQSocket
        var lastHeard: Int64 = 0
        var lastSent: Int64 = 0

        init(spec: WorkerSpec, socket: ZMQSocket) {
            self.spec = spec
            self.socket = socket
        }
    }

    private func run(onRequest: @escaping @Sendable (Incoming) -> Void) {
        defer {
            // First, so that an ask made from here on is refused instead of waiting for a thread
            // that has ended (after a socket failure nothing else has said so).
            outbox.withLock { $0.stopping = true }
            let left = waiters.withLock { waiters in
                defer { waiters = [:] }
                return waiters
            }
            for waiter in left.values {
                waiter.continuation.resume(throwing: AskError(service: waiter.service, code: "host_stopped",
                                                              message: "the agent host has stopped"))
            }
            let waiting = ending.withLock { ending in
                defer { ending = Ending(ended: true) }
                return ending.waiting
            }
            for continuation in waiting { continuation.resume() }
        }
        do {
            try loop(onRequest: onRequest)
        } catch {
            // A socket failure leaves nothing to serve with; the host sees the request stream end.
        }
    }

    private func loop(onRequest: (Incoming) -> Void) throws {
        let wake = try ZMQSocket(context, type: .pair)
        try wake.connect(wakeEndpoint)
        let client = try dealer()
        try client.setOption(.routingID, clientIdentity)
        try client.setOption(.sendHighWaterMark, 100_000)
        try client.setOption(.receiveHighWaterMark, 100_000)
        try client.connect(endpoint)
        var sockets: [WorkerSocket] = []
        for spec in workers {
            let worker = WorkerSocket(spec: spec, socket: try dealer())
            try register(worker)
            sockets.append(worker)
        }
        let byService = Dictionary(sockets.map { ($0.spec.service, $0) }, uniquingKeysWith: { first, _ in first })

        // A wake-up sent before this thread connected its end of the PAIR was lost: the first
        // cycle looks at the outbox without one. Later ones reach the thread.
        var outboxMayHold = true
        // Overdue asks are looked for at most once a second.
        let resendScan = Int64(min(askResendInterval, 1000))
        var nextResendScan = resendScan > 0 ? MonotonicTime.milliseconds() + resendScan : .max
        var poller = ZMQPoller([wake, client] + sockets.map(\.socket))
        while true {
            let now = MonotonicTime.milliseconds()
            if now >= nextResendScan {
                nextResendScan = now + resendScan
                try resend(on: client, now: now, overdueOnly: true)
            }
            var resend = false
            for worker in sockets {
                if now - worker.lastHeard > Int64(heartbeatInterval * liveness) {
                    worker.socket = try dealer()
                    try register(worker)
                    resend = true
                } else if now - worker.lastSent >= Int64(heartbeatInterval) {
                    try send(MDPCodec.workerSignal(.heartbeat, framing: .plain), on: worker)
                }
            }
            if resend { try resendAsks(on: client) }
            var nextBeat = sockets.isEmpty ? now + 1000 : Int64.max
            for worker in sockets { nextBeat = min(nextBeat, worker.lastSent + Int64(heartbeatInterval)) }
            nextBeat = min(nextBeat, nextResendScan)
            let timeout = Int(max(0, min(nextBeat - MonotonicTime.milliseconds(), 1000)))
            // A worker's socket is new after it registered again.
            for (index, worker) in sockets.enumerated() { poller.set(index + 2, worker.socket) }
            try poller.poll(timeout: timeout)
            if poller.isReadable(0) {
                while try wake.receive(wait: false) != nil {}
                outboxMayHold = true
            }
            if outboxMayHold {
                outboxMayHold = false
                let (commands, stopping) = outbox.withLock { outbox in
                    defer { outbox.commands = [] }
                    return (outbox.commands, outbox.stopping)
                }
                for command in commands {
                    switch command {
                    case .ask(_, let frames):
                        _ = try client.send(frames, wait: false)
                    case .reply(let service, let frames):
                        if let worker = byService[service] { try send(frames, on: worker) }
                    case .disconnect:
                        for worker in sockets {
                            try send(MDPCodec.workerSignal(.disconnect, framing: .plain), on: worker)
                        }
                    }
                }
                if stopping {
                    // Closed with their last messages (a DISCONNECT) still to send: give them a
                    // moment on a TCP link instead of dropping them at close.
                    for worker in sockets { try? worker.socket.setOption(.linger, 1000) }
                    return
                }
            }
            if poller.isReadable(1) {
                while let frames = try client.receive(wait: false) {
                    deliver(frames)
                }
            }
            var registeredAgain = false
            for (index, worker) in sockets.enumerated() where poller.isReadable(index + 2) {
                registeredAgain = try receive(on: worker, onRequest: onRequest) || registeredAgain
            }
            // A router that does not know us restarted: the asks it had not committed are gone.
            if registeredAgain { try resendAsks(on: client) }
        }
    }

    private func register(_ worker: WorkerSocket) throws {
        try worker.socket.setOption(.sendHighWaterMark, 100_000)
        try worker.socket.connect(endpoint)
        try send(MDPCodec.workerReady(service: worker.spec.service, metadata: worker.spec.metadata.encoded()),
                 on: worker)
        worker.lastHeard = MonotonicTime.milliseconds()
        registrationCount.add(1, ordering: .relaxed)
    }

    private func send(_ frames: [[UInt8]], on worker: WorkerSocket) throws {
        _ = try worker.socket.send(frames, wait: false)
        worker.lastSent = MonotonicTime.milliseconds()
    }

    /// Hands requests to `onRequest`; returns true when the router said DISCONNECT and the worker
    /// registered again.
    private func receive(on worker: WorkerSocket, onRequest: (Incoming) -> Void) throws -> Bool {
        var registeredAgain = false
        while let frames = try worker.socket.receive(wait: false) {
            worker.lastHeard = MonotonicTime.milliseconds()
            guard let message = try? MDPCodec.decodeForWorker(frames) else { continue }
            switch message.command {
            case .workerRequest:
                guard let first = message.body.first, var envelope = try? Envelope(decoding: first) else {
                    // A native worker always gets an envelope; anything else is answered as malformed.
                    let error = AskError(service: worker.spec.service, code: "malformed_envelope",
                                         message: "the request reached the agent without an envelope")
                    try send(MDPCodec.workerReply(.workerFinal, client: message.client, body: [error.body]),
                             on: worker)
                    continue
                }
                let stateIsEmpty = envelope.headers.removeValue(forKey: Envelope.emptyStateHeader) != nil
                onRequest(Incoming(service: worker.spec.service, client: message.client, envelope: envelope,
                                   frames: Array(message.body.dropFirst()), stateIsEmpty: stateIsEmpty))
            case .disconnect:
                worker.socket = try dealer()
                try register(worker)
                registeredAgain = true
            default:
                break
            }
        }
        return registeredAgain
    }

    /// Routes a PARTIAL or FINAL to the ask waiting for it.
    private func deliver(_ frames: [[UInt8]]) {
        // Only the ask's id and the status are read: no dictionary of headers for every reply.
        guard let reply = try? MDPCodec.decodeClientReply(frames), let first = reply.body.first,
              let (id, status) = try? Envelope.causationID(andHeader: "status", decoding: first)
        else { return }
        let body = Array(reply.body.dropFirst())
        if reply.command == .partial {
            let onPartial = waiters.withLock { waiters -> (@Sendable (Payload) -> Void)? in
                waiters[id]?.partials.append(Payload(bytes: body.first ?? []))
                return waiters[id]?.onPartial
            }
            onPartial?(Payload(bytes: body.first ?? []))
            return
        }
        guard let waiter = waiters.withLock({ $0.removeValue(forKey: id) }) else { return }
        if let error = AskError(service: waiter.service, status: status, frames: body) {
            waiter.continuation.resume(throwing: error)
        } else {
            waiter.continuation.resume(returning: AskReply(payload: Payload(bytes: body.first ?? []), frames: body,
                                                           partials: waiter.partials))
        }
    }

    /// Sends every waiting ask again (the router may have lost it); their next resends count from now.
    private func resendAsks(on client: ZMQSocket) throws {
        try resend(on: client, now: MonotonicTime.milliseconds(), overdueOnly: false)
    }

    /// Sends waiting asks again, marked `reissue`: all, or those past their time, whose wait then
    /// doubles up to a minute. An answer that went to another client asking under the same id (a
    /// host that took over the request while this one seemed gone) the router gives again to
    /// whoever asks next.
    private func resend(on client: ZMQSocket, now: Int64, overdueOnly: Bool) throws {
        let frames = waiters.withLock { waiters -> [[[UInt8]]] in
            let due = waiters.compactMap { id, waiter in !overdueOnly || waiter.resendAt <= now ? id : nil }
            return due.compactMap { id -> [[UInt8]]? in
                guard var waiter = waiters[id] else { return nil }
                if !waiter.reissued, let marked = Self.reissued(waiter.frames) {
                    waiter.frames = marked
                    waiter.reissued = true
                }
                if waiter.interval > 0 {
                    if overdueOnly { waiter.interval = min(waiter.interval * 2, 60_000) }
                    waiter.resendAt = now + waiter.interval
                }
                waiters[id] = waiter
                return waiter.frames
            }
        }
        for request in frames {
            // A full queue means the router is away: the copy already waiting for it will do.
            _ = try client.send(request, wait: false)
        }
    }

    /// An ask's frames (plain MDP client framing: header, command, service, envelope, …) with
    /// the `reissue` header in the envelope: the router then also looks for its answer in the log.
    private static func reissued(_ frames: [[UInt8]]) -> [[UInt8]]? {
        guard frames.count > 3 else { return nil }
        let rewritten = Envelope.rewriting(frames[3], headers: [(Envelope.reissueHeader, "1")])
            ?? (try? Envelope(decoding: frames[3])).flatMap { sent -> [UInt8]? in
                var envelope = sent
                envelope.headers[Envelope.reissueHeader] = "1"
                return try? envelope.encoded()
            }
        guard let encoded = rewritten else { return nil }
        var marked = frames
        marked[3] = encoded
        return marked
    }
}
