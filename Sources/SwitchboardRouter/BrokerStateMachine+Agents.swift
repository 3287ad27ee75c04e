// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire

/// What the broker does for native agents beyond MDP: determinism-lock entries, the handler's
/// clock, and the events agents emit alongside their messages.
extension BrokerStateMachine {
    /// The envelope header carrying the request's logged receive time (ns since the epoch).
    static let timeHeader = "time"

    /// Appends a `lock.recorded` event the first time a run is served by this version of a service.
    mutating func recordLock(_ request: Request, worker: Worker, now: Now, into output: inout Output) -> Bool {
        guard !request.runID.isEmpty else { return false }
        guard lockedServices.insert(LockEntry(LockUse(runID: request.runID, lock: worker.lockIdentity))) else {
            return false
        }
        output.events.append(RouterEvents.lockRecorded(runID: request.runID, service: worker.service,
                                                       version: worker.version, configDigest: worker.configDigest,
                                                       causationID: request.messageID, now: now.wall))
        return true
    }

    /// Whether a worker's reply says it failed: its envelope's `status` is `error`.
    static func isError(_ body: [[UInt8]]) -> Bool {
        guard let first = body.first, Envelope.isEnvelope(first) else { return false }
        return (try? Envelope.header("status", decoding: first)) == "error"
    }

    /// Splits the emitted events off a native body: the body as it is forwarded (its envelope
    /// without the count) and the events to log. Nil when they are malformed, or would not be
    /// accepted by the log: a bad event must be refused here, not fail a commit.
    /// - Parameter announced: the envelope's count of emitted events (nil when it has none).
    static func takeEmitted(from body: [[UInt8]], announced: String?) -> (body: [[UInt8]], events: [EmittedEvent])? {
        guard announced != nil else { return (body, []) }
        guard let (stripped, events) = EmittedEvent.split(body, announced: announced),
              // An agent's event belongs to a stream: router events have none, and cannot be forged.
              events.allSatisfy({ !$0.type.isEmpty && !$0.streamID.isEmpty && JSONText.isValid($0.payload) })
        else { return nil }
        guard let encoded = Envelope.rewriting(body[0], headers: [(EmittedEvent.headerName, nil)])
                ?? (try? Envelope(decoding: body[0]).encoded(omitting: EmittedEvent.headerName))
        else { return nil }
        return ([encoded] + stripped.dropFirst(), events)
    }

    /// A native worker always gets an envelope: the client's, if it sent one, with the run and the
    /// attempt as the router knows them, the handler's clock, and `state.empty` when it applies.
    func dispatchedEnvelope(_ request: Request, body: [[UInt8]], service: String, unpinned: Bool) -> [UInt8]? {
        // Only the router says so: no other message of the key can be under way, and the log has
        // no event of the instance's stream, committed or waiting for its commit. One in a body
        // logged by an older router is not passed on.
        let empty = unpinned && request.attempt == 1 && instanceStateIsEmpty(service: service, key: request.key)
        // The handler's clock: when the request was received, as the log records it.
        let time = String(request.receivedWall.nanosecondsSinceEpoch)
        if request.native, let first = body.first, let rewritten = Envelope.rewriting(
            first, runID: request.runID, attempt: request.attempt,
            headers: [(Envelope.emptyStateHeader, empty ? "1" : nil), (Self.timeHeader, time)]) {
            return rewritten
        }
        var envelope = Envelope(messageID: request.messageID)
        if request.native, let first = body.first, let sent = try? Envelope(decoding: first) {
            envelope = sent
        }
        envelope.runID = request.runID
        envelope.attempt = request.attempt
        envelope.headers[Self.timeHeader] = time
        envelope.headers[Envelope.emptyStateHeader] = empty ? "1" : nil
        return try? envelope.encoded()
    }

    /// A client's body without `state.empty`, which only the router sets: the log holds none.
    static func withoutEmptyStateMark(_ body: [[UInt8]], envelope: Envelope) -> [[UInt8]] {
        guard envelope.headers[Envelope.emptyStateHeader] != nil, var sent = try? Envelope(decoding: body[0]),
              sent.headers.removeValue(forKey: Envelope.emptyStateHeader) != nil, let encoded = try? sent.encoded()
        else { return body }
        return [encoded] + body.dropFirst()
    }

    /// Whether the stream of the instance (service, key) has no event, committed or not, so the
    /// host may make it fresh without asking `sb.state`. False when the log cannot tell.
    func instanceStateIsEmpty(service: String, key: String) -> Bool {
        guard let streamHasEvents else { return false }
        let stream = StateService.instanceStream(type: service, key: key)
        return !uncommittedStreams.contains(stream) && !streamHasEvents(stream)
    }
}

/// Streams given events in batches not yet committed: the log's index does not show them yet.
struct UncommittedStreams {
    /// Each stream's latest batch.
    private var latest: [String: UInt64] = [:]
    private var order = FIFOQueue<(stream: String, batch: UInt64)>()

    func contains(_ stream: String) -> Bool { latest[stream] != nil }

    mutating func insert(_ stream: String, batch: UInt64) {
        latest[stream] = batch
        order.append((stream, batch))
    }

    /// Forgets what batches up to `batch` gave: the index holds it now.
    mutating func committed(through batch: UInt64) {
        while let oldest = order.first, oldest.batch <= batch {
            order.popFirst()
            if let newest = latest[oldest.stream], newest <= batch { latest[oldest.stream] = nil }
        }
    }
}

/// What a worker of a service runs, as its READY said.
struct LockIdentity: Hashable {
    var service: String
    var version: String
    var configDigest: String
}

/// Numbers for ``LockIdentity`` values, never reused.
struct LockIdentityNumbers {
    private var numbers: [LockIdentity: Int] = [:]
    private var next = 0

    mutating func number(for lock: LockIdentity) -> Int {
        if let number = numbers[lock] { return number }
        // Peers choose versions: past a bound the table starts over. Numbers are never reused,
        // so a run only gets a repeated lock entry, which readers ignore.
        if numbers.count >= 4096 { numbers = [:] }
        defer { next += 1 }
        numbers[lock] = next
        return next
    }
}

/// A run and the numbered ``LockIdentity`` of a worker that served it; hashed once, since a set
/// probes by equality and run ids share long prefixes.
typealias LockEntry = Prehashed<LockUse>

struct LockUse: Hashable {
    var runID: String
    var lock: Int
}

/// A set that remembers the newest `capacity` keys; older ones are forgotten in insertion order.
struct RecentKeys<Key: Hashable> {
    let capacity: Int
    private var keys: Set<Key> = []
    private var order = FIFOQueue<Key>()

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Adds `key`; false when it is already remembered.
    mutating func insert(_ key: Key) -> Bool {
        guard keys.insert(key).inserted else { return false }
        order.append(key)
        if order.count > capacity, let oldest = order.popFirst() { keys.remove(oldest) }
        return true
    }
}
