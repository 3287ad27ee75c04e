// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire

/// A run's events, indexed for replay, with each request's outcome, partial replies, asks and
/// emitted events kept on the request itself. ``HistoryFeed`` fills it in the run's order.
struct RunHistory: Sendable {
    struct Request: Sendable {
        /// What the `request.received` event holds, shared by every copy: replay copies requests
        /// often, and a copy of a message's many strings and arrays costs more than its replay.
        final class Received: Sendable {
            let position: UInt64
            let service: String
            let timestamp: Timestamp
            let message: AgentMessage
            /// The message's instance key, looked up once: replay routes each message by it.
            let key: String
            /// Answered from a parent run's log when this run was forked from it.
            let forked: Bool

            init(position: UInt64, service: String, timestamp: Timestamp, message: AgentMessage, forked: Bool) {
                self.position = position
                self.service = service
                self.timestamp = timestamp
                self.message = message
                self.key = message.key
                self.forked = forked
            }
        }

        let received: Received
        var position: UInt64 { received.position }
        var service: String { received.service }
        var timestamp: Timestamp { received.timestamp }
        var message: AgentMessage { received.message }
        var forked: Bool { received.forked }
        var outcome: Outcome?
        var partials: [[UInt8]] = []
        /// The final reply carries an error status: the ask threw, and must throw again when replayed.
        var errorReply = false
        /// The requests this one's handler asked, in order.
        var asks: [Int] = []
        /// The events this one's handler emitted, in order.
        var emitted: [Emitted] = []
    }

    /// A request as replay took it from the history: its batch, shared, and its place there. A
    /// request copied for each job and session would cost more retains and releases than its replay.
    struct Taken: Sendable {
        let batch: [Request]
        let slot: Int

        /// The request, read in place.
        var request: Request {
            _read { yield batch[slot] }
        }
    }

    enum Outcome: Sendable {
        case reply(position: UInt64, frames: [[UInt8]])
        case failed(position: UInt64, code: String, message: String)
    }

    struct Emitted: Sendable {
        var position: UInt64
        var type: String
        var payload: [UInt8]
    }

    private(set) var requests: [Request] = []
    private var requestsByID = RequestTable()
    private(set) var lock: [LockEntry] = []
    /// Events of the run read from the log; set once the whole run is read.
    private(set) var eventsRead = 0
    private(set) var lastPosition: UInt64 = 0

    /// What one event adds to the history, read from the event without the history at hand:
    /// ``HistoryFeed`` reads events outside its lock (``RunHistory/Parser``) and applies them under it.
    struct Parsed: Sendable {
        enum Kind: Sendable {
            /// `hash`: the message id's, as ``RequestTable`` keys it.
            case request(service: String, message: AgentMessage, timestamp: Timestamp, forked: Bool, hash: UInt64)
            case finalReply(frames: [[UInt8]], error: Bool)
            case partialReply([UInt8])
            case failed(code: String, message: String)
            case lock(LockEntry)
            case emitted(type: String, payload: [UInt8])
        }

        var position: UInt64
        /// The index of the request the event's causation id names, when the run holds one.
        var cause: Int?
        var kind: Kind
    }

    /// Marks the whole run read.
    mutating func finish(eventsRead: Int, lastPosition: UInt64) {
        self.eventsRead = eventsRead
        self.lastPosition = lastPosition
    }

    /// The request with message id `id`.
    func request(id: String) -> Int? {
        requestsByID.find(RequestTable.hash(id)) { requests[$0].message.messageID == id }
    }

    /// Adds what one event of the run holds, in the run's order.
    mutating func apply(_ event: consuming Parsed) {
        apply(position: event.position, cause: event.cause, event.kind)
    }

    /// Takes the kind's payload without copies: the reading thread would release each copy.
    private mutating func apply(position: UInt64, cause: Int?, _ kind: consuming Parsed.Kind) {
        switch consume kind {
        case .request(let service, let message, let timestamp, let forked, let hash):
            let index = requests.count
            if let cause = cause { requests[cause].asks.append(index) }
            let messageID = message.messageID
            requestsByID.insert(index, hash: hash) { requests[$0].message.messageID == messageID }
            requests.append(Request(received: .init(position: position, service: service, timestamp: timestamp,
                                                    message: message, forked: forked)))
        case .finalReply(let frames, let error):
            guard let index = cause else { return }
            if error { requests[index].errorReply = true }
            requests[index].outcome = .reply(position: position, frames: frames)
        case .partialReply(let frame):
            guard let index = cause else { return }
            requests[index].partials.append(frame)
        case .failed(let code, let message):
            guard let index = cause else { return }
            requests[index].outcome = .failed(position: position, code: code, message: message)
        case .lock(let entry):
            lock.append(entry)
        case .emitted(let type, let payload):
            guard let index = cause else { return }
            requests[index].emitted.append(Emitted(position: position, type: type, payload: payload))
        }
    }
}

/// Request indices by message id, keyed by a 64-bit FNV-1a hash of the id's bytes: hashing the
/// String costs more than the rest of a lookup. An open-addressed table of those hashes, as a
/// dictionary would hash each hash again; ids whose hashes collide are told apart by the ids.
struct RequestTable: Sendable {
    private var hashes: [UInt64] = []
    /// The request index in each slot, -1 where the slot is empty.
    private var indices: [Int] = []
    private var count = 0
    /// 64 less the log2 of the slot count: slots are taken from a hash's top bits, once mixed.
    private var shift = 64

    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    static func hash(_ id: String) -> UInt64 {
        var id = id
        return id.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }

    private func slot(_ hash: UInt64) -> Int {
        Int(truncatingIfNeeded: (hash &* 0x9E37_79B9_7F4A_7C15) >> UInt64(shift))
    }

    /// Adds `index`; it replaces an entry for the same id (`sameID`), as the last record of an id wins.
    mutating func insert(_ index: Int, hash: UInt64, sameID: (Int) -> Bool) {
        if (count + 1) * 2 > indices.count { grow() }
        var at = slot(hash)
        let mask = indices.count - 1
        while indices[at] >= 0 {
            if hashes[at] == hash, sameID(indices[at]) {
                indices[at] = index
                return
            }
            at = (at + 1) & mask
        }
        hashes[at] = hash
        indices[at] = index
        count += 1
    }

    func find(_ hash: UInt64, where matches: (Int) -> Bool) -> Int? {
        guard !indices.isEmpty else { return nil }
        var at = slot(hash)
        let mask = indices.count - 1
        while indices[at] >= 0 {
            if hashes[at] == hash, matches(indices[at]) { return indices[at] }
            at = (at + 1) & mask
        }
        return nil
    }

    /// Doubles the slots (64 at first) and places every entry again.
    private mutating func grow() {
        let old = (hashes, indices)
        let slots = max(64, indices.count * 2)
        shift = 64 - slots.trailingZeroBitCount
        hashes = Array(repeating: 0, count: slots)
        indices = Array(repeating: -1, count: slots)
        let mask = slots - 1
        for (hash, index) in zip(old.0, old.1) where index >= 0 {
            var at = slot(hash)
            while indices[at] >= 0 { at = (at + 1) & mask }
            hashes[at] = hash
            indices[at] = index
        }
    }
}
