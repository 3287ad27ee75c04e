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
            /// Answered from a parent run's log when this run was forked from it.
            let forked: Bool

            init(position: UInt64, service: String, timestamp: Timestamp, message: AgentMessage, forked: Bool) {
                self.position = position
                self.service = service
                self.timestamp = timestamp
                self.message = message
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
    /// The requests found last, newest first: a message's replies and events follow it closely.
    private var recent: [Int] = []

    /// What one event adds to the history, read from the event without the history at hand:
    /// ``HistoryFeed`` reads events outside its lock and applies them under it.
    struct Parsed: Sendable {
        enum Kind: Sendable {
            case request(service: String, message: AgentMessage, timestamp: Timestamp, forked: Bool)
            case finalReply(frames: [[UInt8]], error: Bool)
            case partialReply([UInt8])
            case failed(code: String, message: String)
            case lock(LockEntry)
            case emitted(type: String, payload: [UInt8])
        }

        var position: UInt64
        var causationID: String
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

    /// The request whose message id is `id`, a causation id.
    private mutating func cause(_ id: String) -> Int? {
        guard !id.isEmpty, let found = recent.first(where: { requests[$0].message.messageID == id }) ?? request(id: id)
        else { return nil }
        remember(found)
        return found
    }

    private mutating func remember(_ index: Int) {
        if let at = recent.firstIndex(of: index) { recent.remove(at: at) }
        recent.insert(index, at: 0)
        if recent.count > 4 { recent.removeLast() }
    }

    /// Adds what one event of the run holds, in the run's order.
    mutating func apply(_ event: Parsed) {
        switch event.kind {
        case .request(let service, let message, let timestamp, let forked):
            let index = requests.count
            // The cause first: a request naming itself as its cause must not find itself.
            if let cause = cause(event.causationID) { requests[cause].asks.append(index) }
            let messageID = message.messageID
            requestsByID.insert(index, hash: RequestTable.hash(messageID)) {
                requests[$0].message.messageID == messageID
            }
            requests.append(Request(received: .init(position: event.position, service: service, timestamp: timestamp,
                                                    message: message, forked: forked)))
            remember(index)
        case .finalReply(let frames, let error):
            guard let index = cause(event.causationID) else { return }
            if error { requests[index].errorReply = true }
            requests[index].outcome = .reply(position: event.position, frames: frames)
        case .partialReply(let frame):
            guard let index = cause(event.causationID) else { return }
            requests[index].partials.append(frame)
        case .failed(let code, let message):
            guard let index = cause(event.causationID) else { return }
            requests[index].outcome = .failed(position: event.position, code: code, message: message)
        case .lock(let entry):
            lock.append(entry)
        case .emitted(let type, let payload):
            guard let index = cause(event.causationID) else { return }
            requests[index].emitted.append(Emitted(position: event.position, type: type, payload: payload))
        }
    }

    /// What `event` of run `runID` adds to a history; nil for events replay does not use.
    static func parse(_ event: EventView, runID: String) -> Parsed? {
        let kind: Parsed.Kind
        let causationID = event.causationID
        switch Kind(event) {
        case .request:
            guard let (service, frames, forked) = event.withPayload(Self.request) else { return nil }
            var body = frames
            var headers: [String: String] = [:]
            if let first = body.first, Envelope.isEnvelope(first) {
                headers = (try? Envelope.headers(decoding: first)) ?? [:]
                body.removeFirst()
            }
            headers["time"] = String(event.timestamp.nanosecondsSinceEpoch)
            let message = AgentMessage(messageID: event.messageID, runID: runID, causationID: causationID,
                                       attempt: 1, frames: body, headers: headers)
            kind = .request(service: service, message: message, timestamp: event.timestamp, forked: forked)
        case .finalReply:
            guard var frames = event.withPayload({ Self.body($0) }) else { return nil }
            var error = false
            if let first = frames.first, Envelope.isEnvelope(first) {
                // An agent's error reply: its ask threw, and must throw again when replayed.
                error = (try? Envelope.headers(decoding: first))?["status"] == "error"
                frames.removeFirst()
            }
            kind = .finalReply(frames: frames, error: error)
        case .partialReply:
            guard var frames = event.withPayload({ Self.body($0) }) else { return nil }
            if let first = frames.first, Envelope.isEnvelope(first) { frames.removeFirst() }
            kind = .partialReply(frames.first ?? [])
        case .failed:
            guard let json = event.withPayload(FlatJSON.init) else { return nil }
            kind = .failed(code: json.strings["error"] ?? "error", message: json.strings["message"] ?? "")
        case .lock:
            guard let json = event.withPayload(FlatJSON.init), let entry = LockEntry(json, position: event.position)
            else { return nil }
            kind = .lock(entry)
        case .other:
            return nil
        case .emitted:
            kind = .emitted(type: event.type, payload: event.withPayload { Array($0) })
        }
        return Parsed(position: event.position, causationID: causationID, kind: kind)
    }

    /// What an event is to replay, told from its type and stream without making strings.
    private enum Kind {
        case request, finalReply, partialReply, failed, lock, emitted, other

        init(_ event: EventView) {
            let kind: Kind? = event.withType { type in
                if type.holds("request.received") { return .request }
                if type.holds("reply.final") { return .finalReply }
                if type.holds("reply.partial") { return .partialReply }
                if type.holds("request.failed") { return .failed }
                if type.holds("lock.recorded") { return .lock }
                if type.holds("agent.snapshot") { return .other }  // StateService.snapshotType
                return nil
            }
            // Router bookkeeping has no stream; an agent's events have theirs under "agent/".
            self = kind ?? (event.withStreamID { $0.begins(with: "agent/") } ? .emitted : .other)
        }
    }

    /// The service, body frames and fork mark of a `request.received` payload.
    private static func request(_ payload: UnsafeRawBufferPointer) -> (String, [[UInt8]], Bool)? {
        var service: String?
        var frames: [[UInt8]] = []
        var forked = false
        let valid = FlatJSON.forEach(in: payload) { member in
            if member.keyIs("service") {
                service = member.string
            } else if member.keyIs("body") {
                guard let body = member.frames else { return false }
                frames = body
            } else if member.keyIs("forkedFromRun") {
                forked = true
            }
            return true
        }
        guard valid, let service else { return nil }
        return (service, frames, forked)
    }

    /// The body frames of a reply payload.
    private static func body(_ payload: UnsafeRawBufferPointer) -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        let valid = FlatJSON.forEach(in: payload) { member in
            guard member.keyIs("body") else { return true }
            guard let body = member.frames else { return false }
            frames = body
            return true
        }
        return valid ? frames : nil
    }
}

/// Request indices by message id, keyed by a 64-bit FNV-1a hash of the id's bytes: hashing the
/// String costs more than the rest of a lookup. Ids whose hashes collide are told apart by the ids.
struct RequestTable: Sendable {
    private var first: [UInt64: Int] = [:]
    private var collided: [UInt64: [Int]] = [:]

    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    static func hash(_ id: String) -> UInt64 {
        var id = id
        return id.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }

    /// Adds `index`; it replaces an entry for the same id (`sameID`), as the last record of an id wins.
    mutating func insert(_ index: Int, hash: UInt64, sameID: (Int) -> Bool) {
        guard let existing = first[hash] else {
            first[hash] = index
            return
        }
        if sameID(existing) {
            first[hash] = index
        } else if let at = collided[hash]?.firstIndex(where: sameID) {
            collided[hash]?[at] = index
        } else {
            collided[hash, default: []].append(index)
        }
    }

    func find(_ hash: UInt64, where matches: (Int) -> Bool) -> Int? {
        if let index = first[hash], matches(index) { return index }
        return collided[hash]?.first(where: matches)
    }
}
