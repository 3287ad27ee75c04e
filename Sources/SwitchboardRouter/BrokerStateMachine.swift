// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire

/// The router's protocol logic, without I/O: messages and clock ticks in, log events and frames out.
///
/// ```
///  client REQUEST ──► queue[service] ──► idle worker (LRU) ──► REQUEST to worker
///                          ▲  │ expiry / unknown service ──► error FINAL to client
///   worker expired ────────┘  (redelivered, attempt + 1)
///  worker PARTIAL/FINAL ──► matching in-flight request ──► PARTIAL/FINAL to client
/// ```
/// Every step that the log must record appends to ``Output/events``; the owner commits those
/// before it sends ``Output/sends`` (log before forward). ``Output/early`` holds what depends on
/// nothing uncommitted (heartbeats, requests whose batch is already committed going to a worker):
/// the owner sends it at once, so workers keep busy while the log syncs.
///
/// Each cycle's output is one *batch*. The owner may commit batches in the background, in order;
/// ``sealBatch()`` starts the next batch and ``markCommitted(through:)`` reports progress.
struct BrokerStateMachine {
    struct Output {
        var events: [NewEvent] = []
        var sends: [(identity: [UInt8], frames: [[UInt8]])] = []
        var early: [(identity: [UInt8], frames: [[UInt8]])] = []
    }

    /// A moment: monotonic milliseconds for timers, wall time for event timestamps.
    struct Now {
        var milliseconds: Int64
        var wall: Timestamp
    }


    struct Worker {
        var identity: [UInt8]
        var service: String
        var framing: MDPFraming
        var native: Bool
        var capacity: Int
        /// From a native worker's READY metadata; recorded in the lock of each run it serves.
        var version = ""
        var configDigest = ""
        /// (service, version, digest) as a number: see ``lockIdentities``.
        var lockIdentity = 0
        var inFlight: [String: Request] = [:]
        var expiresAt: Int64
    }

    struct Service {
        var queue = RequestQueue()
        /// Workers with spare capacity, least recently used first.
        var idle: [[UInt8]] = []
        var workers: Set<[UInt8]> = []

        var queued: Int { queue.count }
    }

    /// The longest message or run id a native client may use.
    static let maximumIDLength = 200

    let configuration: RouterConfiguration
    private(set) var services: [String: Service] = [:]
    private(set) var workers: [[UInt8]: Worker] = [:]
    /// Final replies of recently finished native requests, for clients that ask again.
    var answers: RememberedAnswers
    /// The log's answers, for re-issued asks the memory above has forgotten, and for forks.
    var logAnswers: LogAnswers?
    var pins: [PinKey: Pin] = [:]
    var nextPinSweep: Int64 = 0
    /// Native requests queued, in flight, held for a paused run, parked for an approval or waiting
    /// on a timer, so that a new request needs no search to learn it is new.
    var openNative: Set<Prehashed<String>> = []
    /// (run, numbered service build) already in a run's determinism lock (a repeated lock entry
    /// is harmless: readers keep the first).
    var lockedServices = RecentKeys<LockEntry>(capacity: 100_000)
    /// Each (service, version, digest) a worker registered with, numbered: a lock entry is then a
    /// run id and a number, hashed and compared per dispatch instead of four strings.
    private var lockIdentities = LockIdentityNumbers()
    private var nextHeartbeat: Int64 = 0
    private var sequence: UInt64 = 0
    /// Prefix of message ids this router instance assigns to plain requests.
    let idPrefix: String
    private var arrivals: UInt64 = 0

    mutating func nextArrival() -> UInt64 {
        arrivals += 1
        return arrivals
    }

    /// The batch this cycle's output belongs to.
    private(set) var batch: UInt64 = 1
    /// Every batch up to this one is committed.
    private(set) var committedBatch: UInt64 = 0
    private(set) var invalidMessages = 0
    private(set) var duplicateReplies = 0
    /// Approvals, timers, paused and cancelled runs, the policy and what it counts.
    var control = ControlState()
    /// Whether the log holds an event of a stream (set by the router); without it no instance is
    /// known to be fresh.
    var streamHasEvents: ((String) -> Bool)?
    /// Streams of agent events logged in batches not yet committed.
    var uncommittedStreams = UncommittedStreams()

    init(configuration: RouterConfiguration, idPrefix: String) {
        self.configuration = configuration
        self.idPrefix = idPrefix
        answers = RememberedAnswers(limit: configuration.rememberedAnswers)
    }

    var livenessWindow: Int64 { Int64(configuration.heartbeatInterval * configuration.heartbeatLiveness) }

    // MARK: - Input

    /// - Parameter dispatching: false leaves queued requests for the next ``tick(now:into:)``: the
    ///   router reads a cycle's messages first and dispatches once for all of them.
    mutating func receive(identity: [UInt8], frames: [[UInt8]], now: Now, into output: inout Output,
                          dispatching: Bool = true) {
        switch MDPCodec.decodeFromPeer(frames) {
        case .failure:
            invalidMessages += 1
            // A worker that breaks the protocol is disconnected, as RFC 18 asks.
            if workers[identity] != nil {
                removeWorker(identity, reason: "protocol error", now: now, into: &output, notify: true)
            }
        case .success(let (message, framing)):
            switch message {
            case .clientRequest(let service, let body):
                clientRequest(identity, service: service, body: body, framing: framing, now: now, into: &output)
            case .workerReady(let service, let metadata):
                workerReady(identity, service: service, metadata: metadata, framing: framing, now: now, into: &output)
            case .workerPartial(let client, let body):
                workerReply(identity, client: client, body: body, final: false, framing: framing, now: now,
                            into: &output)
            case .workerFinal(let client, let body):
                workerReply(identity, client: client, body: body, final: true, framing: framing, now: now,
                            into: &output)
            case .workerHeartbeat:
                if workers[identity] != nil {
                    let expiry = now.milliseconds + livenessWindow
                    workers[identity]?.expiresAt = expiry
                } else {
                    invalidMessages += 1
                    output.sends.append((identity, MDPCodec.workerSignal(.disconnect, framing: framing)))
                }
            case .workerDisconnect:
                if workers[identity] != nil {
                    removeWorker(identity, reason: "disconnected", now: now, into: &output, notify: false)
                }
            }
        }
        if dispatching { dispatchAll(now: now, into: &output) }
    }

    /// Heartbeats, dead workers, expired requests.
    mutating func tick(now: Now, into output: inout Output) {
        for (identity, worker) in workers where worker.expiresAt <= now.milliseconds {
            removeWorker(identity, reason: "heartbeat expired", now: now, into: &output, notify: true)
        }
        if now.milliseconds >= nextHeartbeat {
            for worker in workers.values {
                output.early.append((worker.identity, MDPCodec.workerSignal(.heartbeat, framing: worker.framing)))
            }
            nextHeartbeat = now.milliseconds + Int64(configuration.heartbeatInterval)
        }
        // This cycle's requests go to the workers freed this cycle before anything expires: a
        // request is failed only when no worker could take it in time.
        dispatchAll(now: now, into: &output)
        for name in services.keys {
            expireRequests(of: name, now: now, into: &output)
        }
        fireTimers(now: now, into: &output)
        sweepPins(now: now)
        dispatchAll(now: now, into: &output)
    }

    /// This cycle's output is handed to the log; what follows belongs to the next batch.
    mutating func sealBatch() {
        batch += 1
    }

    /// Batches up to `batch` are committed.
    mutating func markCommitted(through batch: UInt64) {
        committedBatch = max(committedBatch, batch)
        uncommittedStreams.committed(through: committedBatch)
    }

    /// Milliseconds until the next timer is due, for the poll timeout.
    func nextDeadline(now: Now) -> Int64 {
        max(0, min(nextHeartbeat - now.milliseconds, Int64(configuration.heartbeatInterval), nextTimer(now: now)))
    }

    // MARK: - Clients

    mutating func clientRequest(
        _ client: [UInt8], service: String, body: [[UInt8]], framing: MDPFraming, now: Now, into output: inout Output
    ) {
        if service == ControlServices.control {
            return controlRequest(client, body: body, framing: framing, now: now, into: &output)
        }
        var body = body
        var causationID = ""
        var emitted: [EmittedEvent] = []
        var native = false
        // The bytes of a `reissue` header: a repeat is measured without them, as the copy before it was.
        var reissueBytes = 0
        var instanceKey = ""
        var messageID: String
        var runID: String
        var expiresAt = now.milliseconds + Int64(configuration.requestExpiry)
        if let first = body.first, Envelope.isEnvelope(first) {
            // Ids get suffixes ("/final", "run-") in the log, whose fields hold 255 bytes.
            guard let envelope = try? Envelope(decoding: first), !envelope.messageID.isEmpty,
                  envelope.messageID.utf8.count <= Self.maximumIDLength, envelope.runID.utf8.count <= Self.maximumIDLength
            else {
                invalidMessages += 1
                return reject(client, service: service, framing: framing, native: false, messageID: "", runID: "",
                              code: "malformed_envelope", message: "the request's envelope header is malformed",
                              now: now, into: &output, log: false)
            }
            native = true
            messageID = envelope.messageID
            runID = envelope.runID.isEmpty ? "run-\(envelope.messageID)" : envelope.runID
            if envelope.deadline > 0 {
                let remaining = (envelope.deadline - now.wall.nanosecondsSinceEpoch) / 1_000_000
                expiresAt = now.milliseconds + max(0, remaining)
            }
            if let reply = answers[messageID] {
                // Asked again after it finished (a reconnected client): answer from memory.
                output.sends.append((client, reply))
                return
            }
            if reattach(messageID, run: runID, to: client, framing: framing) { return }
            // A new native request may carry the events its sender emitted before sending it.
            guard let carried = Self.takeEmitted(from: body, announced: envelope.headers[EmittedEvent.headerName]) else {
                invalidMessages += 1
                return reject(client, service: service, framing: framing, native: true, messageID: messageID,
                              runID: runID, code: "malformed_event",
                              message: "the request's emitted events are malformed", now: now, into: &output,
                              log: false)
            }
            (body, emitted) = carried
            body = Self.withoutEmptyStateMark(body, envelope: envelope)
            causationID = envelope.causationID
            reissueBytes = envelope.headers[Envelope.reissueHeader]
                .map { 3 + Envelope.reissueHeader.utf8.count + $0.utf8.count } ?? 0
            instanceKey = Request.instanceKey(of: envelope, runID: runID)
        } else {
            sequence += 1
            messageID = "\(idPrefix)\(sequence)"
            // A plain service query is the protocol's, not work: it belongs to no run, so that
            // clients polling for a worker do not fill the run list.
            runID = service.hasPrefix("mmi.") ? "" : "run-\(messageID)"
        }
        let size = body.reduce(0) { $0 + $1.count } - reissueBytes
        // Frames count too: each costs bytes in the logged event, and the log caps a payload.
        let tooLarge = size > configuration.maximumBodySize || body.count > configuration.maximumFrames
        // An oversized body is not logged: only that it was refused.
        let request = Request(
            messageID: messageID, runID: runID, causationID: causationID, service: service, client: client,
            clientFraming: framing, native: native, body: tooLarge ? [] : body, attempt: 1,
            receivedAt: now.milliseconds, expiresAt: expiresAt, receivedWall: now.wall, arrival: nextArrival(),
            batch: batch, key: instanceKey)
        if reissueBytes > 0 && !tooLarge && answerFromLog(request, emitted: emitted, now: now, into: &output) { return }
        for event in emitted {
            logEmitted(event, runID: runID, now: now, into: &output)
        }
        output.events.append(RouterEvents.requestReceived(request, now: now.wall))
        if tooLarge {
            return fail(request, code: "too_large",
                        message: "request body of \(size) bytes in \(body.count) frames exceeds the limit of "
                            + "\(configuration.maximumBodySize) bytes in \(configuration.maximumFrames) frames",
                        now: now, into: &output)
        }
        if service.hasPrefix("mmi.") {
            return answerMMI(request, now: now, into: &output)
        }
        admit(request, now: now, into: &output, evaluatePolicy: true)
    }

    /// Queues a request for its service's workers.
    mutating func enqueue(_ request: Request, now: Now, into output: inout Output) {
        // Taken out and put back: a modify through `services[name, default:]` allocates every call.
        // At the limit, the backlog read this cycle goes to idle workers first: only requests no
        // worker can take count against it. (Requests held back by their key's busy worker still
        // count, even when an idle worker could take the new one.)
        let full = services[request.service].map { $0.queued >= configuration.maximumQueueLength && !$0.idle.isEmpty }
        if full == true { dispatch(request.service, now: now, into: &output) }
        if (services[request.service]?.queued ?? 0) >= configuration.maximumQueueLength {
            return fail(request, code: "queue_full",
                        message: "service \(request.service) has \(configuration.maximumQueueLength) requests waiting",
                        now: now, into: &output)
        }
        var service = services.removeValue(forKey: request.service) ?? Service()
        service.queue.append(request)
        services[request.service] = service
    }

    /// A request under way as `messageID` (queued, in flight, or held by the control plane) gets
    /// the new client address.
    private mutating func reattach(_ messageID: String, run runID: String, to client: [UInt8], framing: MDPFraming)
        -> Bool
    {
        // The search below runs only for an id asked again, not for every new request.
        guard openNative.contains(Prehashed(messageID)) else { return false }
        for name in Array(services.keys) {
            // Taken out and put back: changed while the table is iterated, the table and the
            // queue would both be copied.
            guard var service = services.removeValue(forKey: name) else { continue }
            let attached = service.queue.attach(messageID, to: client, framing: framing)
            services[name] = service
            if attached { return true }
        }
        if let identity = workers.first(where: { $0.value.inFlight[messageID] != nil })?.key {
            workers[identity]?.inFlight[messageID]?.attach(client, framing: framing)
            return true
        }
        // Held by the control plane: asked again, it must not be logged and parked a second time.
        return control.attach(messageID, run: runID, to: client, framing: framing)
    }

    private mutating func answerMMI(_ request: Request, now: Now, into output: inout Output) {
        let status: String
        if request.service == "mmi.service" {
            let name = String(decoding: request.body.last ?? [], as: UTF8.self)
            status = (services[name]?.workers.isEmpty == false) ? "200" : "404"
        } else {
            status = "501"
        }
        finish(request, body: [Array(status.utf8)], now: now, into: &output)
    }

    // MARK: - Workers

    private mutating func workerReady(
        _ identity: [UInt8], service: String, metadata: [UInt8]?, framing: MDPFraming, now: Now,
        into output: inout Output
    ) {
        if workers[identity] != nil {
            // READY twice is a protocol error.
            invalidMessages += 1
            return removeWorker(identity, reason: "protocol error", now: now, into: &output, notify: true)
        }
        let info = metadata.flatMap(WorkerMetadata.init(decoding:))
        let capacity = max(1, min(info?.capacity ?? 1, 1024))
        let lock = LockIdentity(service: service, version: info?.version ?? "", configDigest: info?.configDigest ?? "")
        workers[identity] = Worker(
            identity: identity, service: service, framing: framing, native: info != nil, capacity: capacity,
            version: lock.version, configDigest: lock.configDigest, lockIdentity: lockIdentities.number(for: lock),
            expiresAt: now.milliseconds + livenessWindow)
        services[service, default: Service()].workers.insert(identity)
        services[service, default: Service()].idle.append(identity)
        output.events.append(RouterEvents.workerJoined(identity, service: service, capacity: capacity,
                                                       metadata: info, framing: framing, now: now.wall))
    }

    private mutating func workerReply(
        _ identity: [UInt8], client: [UInt8], body: [[UInt8]], final: Bool, framing: MDPFraming, now: Now,
        into output: inout Output
    ) {
        // The worker is taken out of the table, changed and put back, never changed through a
        // copy: a copy would share its requests in flight, and the next change would copy them all
        // (hundreds under load) on every reply.
        guard var worker = workers.removeValue(forKey: identity) else {
            invalidMessages += 1
            output.sends.append((identity, MDPCodec.workerSignal(.disconnect, framing: framing)))
            return
        }
        worker.expiresAt = now.milliseconds + livenessWindow
        // Only the ids and the count of emitted events are read: no dictionary for every reply.
        let reply = worker.native ? body.first.flatMap {
            try? Envelope.causationID(andHeader: EmittedEvent.headerName, decoding: $0)
        } : nil
        guard let key = Self.answered(in: worker, causationID: reply?.causationID, envelope: body.first, client: client),
              let request = worker.inFlight[key]
        else {
            workers[identity] = worker
            // Late or repeated reply to a request that finished or moved elsewhere.
            duplicateReplies += 1
            return
        }
        // A FINAL, or a PARTIAL that ends the request with an error, frees the worker's place.
        var keepsPlace = !final
        defer {
            if !keepsPlace { worker.inFlight[key] = nil }
            workers[identity] = worker
            if !keepsPlace { markIdle(identity) }
        }
        var body = body
        var emitted: [EmittedEvent] = []
        if let reply {
            guard let carried = Self.takeEmitted(from: body, announced: reply.header) else {
                invalidMessages += 1
                keepsPlace = false
                return fail(request, code: "malformed_event",
                            message: "the worker's reply carried malformed emitted events", now: now, into: &output)
            }
            (body, emitted) = carried
        }
        for event in emitted {
            logEmitted(event, runID: request.runID, now: now, into: &output)
        }
        let size = body.reduce(0) { $0 + $1.count }
        if size > configuration.maximumBodySize || body.count > configuration.maximumFrames {
            // The client learns that the answer was too large; the worker's slot is freed.
            keepsPlace = false
            return fail(request, code: "reply_too_large",
                        message: "reply of \(size) bytes exceeds the limit of \(configuration.maximumBodySize)",
                        now: now, into: &output)
        }
        guard final else {
            output.events.append(RouterEvents.reply(request, body: body, final: false, now: now.wall))
            output.sends.append((request.replyAddress, MDPCodec.clientReply(
                .partial, service: request.service, body: clientBody(request, body, final: false),
                framing: request.clientFraming)))
            return
        }
        finish(request, body: body, now: now, into: &output)
    }

    private mutating func markIdle(_ identity: [UInt8]) {
        // Taken out and put back: `services[name]?.idle.append` runs nested modify accessors, which
        // allocate on every call.
        guard let name = workers[identity]?.service, var service = services.removeValue(forKey: name) else { return }
        if !service.idle.contains(identity) { service.idle.append(identity) }
        services[name] = service
    }

    private mutating func removeWorker(
        _ identity: [UInt8], reason: String, now: Now, into output: inout Output, notify: Bool
    ) {
        guard let worker = workers.removeValue(forKey: identity) else { return }
        if notify {
            output.sends.append((identity, MDPCodec.workerSignal(.disconnect, framing: worker.framing)))
        }
        services[worker.service]?.workers.remove(identity)
        services[worker.service]?.idle.removeAll { $0 == identity }
        // Its keys move to other workers, which rebuild their instances from the log.
        pins = pins.filter { $0.value.worker != identity }
        output.events.append(RouterEvents.workerLeft(identity, service: worker.service, reason: reason, now: now.wall))
        // Its requests go back to the front of the queue, in their original order.
        let orphans = worker.inFlight.values.sorted { $0.arrival < $1.arrival }
        var requeued: [Request] = []
        for var request in orphans {
            request.attempt += 1
            request.batch = batch
            // Waiting starts again: a replacement worker gets the grace period to show up, and the
            // request a fresh expiry (its first worker may have held it for long).
            request.receivedAt = now.milliseconds
            request.expiresAt = now.milliseconds + Int64(configuration.requestExpiry)
            output.events.append(RouterEvents.redelivered(request, reason: reason, now: now.wall))
            requeued.append(request)
        }
        if !requeued.isEmpty {
            var service = services.removeValue(forKey: worker.service) ?? Service()
            service.queue.prepend(requeued)
            services[worker.service] = service
        }
    }

    // MARK: - Dispatch and completion

    private mutating func dispatchAll(now: Now, into output: inout Output) {
        // Names first: iterating the table while dispatching would hold a copy of it.
        let ready = services.compactMap { $0.value.queued > 0 && !$0.value.idle.isEmpty ? $0.key : nil }
        for name in ready {
            dispatch(name, now: now, into: &output)
        }
    }

    private mutating func dispatch(_ name: String, now: Now, into output: inout Output) {
        // Taken out while dispatching, so that its queue is changed in place rather than copied.
        guard var service = services.removeValue(forKey: name) else { return }
        defer { services[name] = service }
        // Requests whose key's worker is busy wait, in order, ahead of the rest of the queue.
        var waiting: [Request] = []
        var blockedKeys: Set<PinKey> = []
        while service.queued > 0, !service.idle.isEmpty {
            let request = service.queue.removeFirst()
            // The least recently used free worker, unless the request's key is pinned to another.
            var slot = 0
            // Of two strings, not one joined: joining allocated for every dispatch.
            let pinKey = request.key.isEmpty ? nil : PinKey(service: name, key: request.key)
            if let pinKey {
                if blockedKeys.contains(pinKey) {
                    waiting.append(request)
                    continue
                }
                if let pin = pins[pinKey], workers[pin.worker] != nil {
                    guard let index = service.idle.firstIndex(of: pin.worker) else {
                        blockedKeys.insert(pinKey)
                        waiting.append(request)
                        continue
                    }
                    slot = index
                }
            }
            let identity = service.idle.remove(at: slot)
            var dispatched = request
            dispatched.dispatchedClient = request.client
            // Taken out, recorded in flight and put back, then only read: a copy held across a
            // change would copy its whole table of requests in flight.
            guard var worker = workers.removeValue(forKey: identity) else {
                service.queue.putBack()
                continue
            }
            worker.inFlight[request.messageID] = dispatched
            workers[identity] = worker
            // A key never dispatched (or not for a long while) may be an instance with no history.
            let unpinned = pinKey.map { pins[$0] == nil } ?? false
            if let pinKey { pins[pinKey] = Pin(worker: identity, lastUsed: now.milliseconds) }
            var body = request.body
            if request.native && !worker.native {
                // A plain MDP worker gets a plain body; the router adds the reply's envelope.
                body = Array(body.dropFirst())
            }
            if worker.native {
                if let encoded = dispatchedEnvelope(request, body: body, service: name, unpinned: unpinned) {
                    body = request.native ? [encoded] + body.dropFirst() : [encoded] + body
                }
            }
            if worker.inFlight.count < worker.capacity { service.idle.append(identity) }
            let frames = MDPCodec.workerRequest(client: request.client, body: body, framing: worker.framing)
            if worker.native && recordLock(request, worker: worker, now: now, into: &output) {
                // The lock entry must be committed before the request reaches the worker.
                output.sends.append((identity, frames))
            } else if request.batch <= committedBatch {
                output.early.append((identity, frames))
            } else {
                output.sends.append((identity, frames))
            }
        }
        service.queue.prepend(waiting)
        service.queue.compact()
    }


    private mutating func expireRequests(of name: String, now: Now, into output: inout Output) {
        let grace = Int64(configuration.unknownServiceGrace)
        let due = services[name].map {
            $0.queue.mayBeDue(now: now.milliseconds, hasWorkers: !$0.workers.isEmpty, grace: grace)
        }
        guard due == true, var service = services.removeValue(forKey: name) else { return }
        let hasWorkers = !service.workers.isEmpty
        func unserved(_ request: Request) -> Bool { !hasWorkers && now.milliseconds - request.receivedAt >= grace }
        let failed = service.queue.removeAll { unserved($0) || now.milliseconds >= $0.expiresAt }
        // A name nobody serves and nobody waits for is forgotten: random names must not pile up.
        services[name] = !failed.isEmpty && service.queue.isEmpty && service.workers.isEmpty ? nil : service
        for request in failed {
            if unserved(request) {
                fail(request, code: "unknown_service", message: "no worker offers service \(name)", now: now,
                     into: &output)
            } else {
                fail(request, code: "expired", message: "request expired before a worker of \(name) was free",
                     now: now, into: &output)
            }
        }
    }

    mutating func finish(_ request: Request, body: [[UInt8]], now: Now, into output: inout Output) {
        if request.native { openNative.remove(Prehashed(request.messageID)) }
        // A request with no causation id is a client's: the run ends once all such are answered.
        let ends: RunState? = request.causationID.isEmpty ? (Self.isError(body) ? .failed : .completed) : nil
        output.events.append(RouterEvents.reply(request, body: body, final: true, ends: ends, now: now.wall))
        let frames = MDPCodec.clientReply(.final, service: request.service, body: clientBody(request, body, final: true),
                                          framing: request.clientFraming)
        output.sends.append((request.replyAddress, frames))
        if request.native { answers.remember(request.messageID, reply: frames) }
    }

    mutating func fail(_ request: Request, code: String, message: String, now: Now, into output: inout Output) {
        if request.native { openNative.remove(Prehashed(request.messageID)) }
        reject(request.replyAddress, service: request.service, framing: request.clientFraming, native: request.native,
               messageID: request.messageID, runID: request.runID, code: code, message: message, now: now,
               into: &output, log: true, endsRun: request.causationID.isEmpty)
    }

    /// Answers a request with an error FINAL: `{"error": code, "message": …}`, behind an envelope
    /// with `status: error` for native clients.
    private mutating func reject(
        _ client: [UInt8], service: String, framing: MDPFraming, native: Bool, messageID: String, runID: String,
        code: String, message: String, now: Now, into output: inout Output, log: Bool, endsRun: Bool = false
    ) {
        if log {
            output.events.append(RouterEvents.failed(messageID: messageID, runID: runID, service: service,
                                                     code: code, message: message, endsRun: endsRun,
                                                     now: now.wall))
        }
        let frames = Self.errorFrames(service: service, framing: framing, native: native, messageID: messageID,
                                      runID: runID, code: code, message: message)
        output.sends.append((client, frames))
        if native && !messageID.isEmpty { answers.remember(messageID, reply: frames) }
    }
}
