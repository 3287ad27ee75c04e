// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import SwitchboardLog
import SwitchboardWire

extension RunHistory {
    /// Reads one run's events into what they add to its history, on the reading thread and in the
    /// run's order. It finds each event's cause among the requests read before it by the bytes of
    /// the causation id, so no string is made for it and the history's lock is held only to apply.
    struct Parser {
        let runID: String
        /// The message id of each request read, by index.
        private var ids: [String] = []
        private var table = RequestTable()
        /// The requests found last, newest first: a message's replies and events follow it closely.
        private var recent = [Int](repeating: -1, count: 4)
        /// Holds each body's first frame while it is read: an envelope is not kept, so needs no array of its own.
        private var first: [UInt8] = []

        init(runID: String) {
            self.runID = runID
        }

        /// What `event` adds to the history; nil for events replay does not use.
        mutating func parse(_ event: EventView) -> Parsed? {
            let eventKind = EventKind(event)
            if eventKind == .other { return nil }
            let kind: Parsed.Kind
            // The cause first: a request naming itself as its cause must not find itself. A lock
            // entry needs none, and must not reorder the requests found last.
            let cause = eventKind == .lock ? nil : event.withCausationID { self.cause($0) }
            switch eventKind {
            case .request:
                let fields = event.payloadEncoding == .fields
                guard let (service, frames, forked, envelope) = event.withPayload({ payload in
                    fields ? request { FieldsPayload.forEach(in: payload, $0) }
                        : request { FlatJSON.forEach(in: payload, $0) }
                }) else { return nil }
                var headers = envelope
                // What the router adds to the envelope as it dispatches; the handler sees it live.
                headers["time"] = String(event.timestamp.nanosecondsSinceEpoch)
                let messageID = event.messageID
                let hash = RequestTable.hash(messageID)
                let index = ids.count
                ids.append(messageID)
                table.insert(index, hash: hash) { [ids] in ids[$0] == messageID }
                remember(index)
                // A found cause's id is the causation id: the string is shared rather than made again.
                let message = AgentMessage(messageID: messageID, runID: runID,
                                           causationID: cause.map { ids[$0] } ?? event.causationID,
                                           attempt: 1, frames: frames, headers: headers)
                kind = .request(service: service, message: message, timestamp: event.timestamp, forked: forked,
                                hash: hash)
            case .finalReply:
                guard let (frames, envelope) = body(of: event) else { return nil }
                // An agent's error reply: its ask threw, and must throw again when replayed.
                let error = envelope && (try? Envelope.header("status", decoding: first)) == "error"
                kind = .finalReply(frames: frames, error: error)
            case .partialReply:
                guard let (frames, _) = body(of: event) else { return nil }
                kind = .partialReply(frames.first ?? [])
            case .failed:
                guard let json = event.withPayload(FlatJSON.init) else { return nil }
                kind = .failed(code: json.strings["error"] ?? "error", message: json.strings["message"] ?? "")
            case .lock:
                guard let json = event.withPayload(FlatJSON.init), let entry = LockEntry(json, position: event.position)
                else { return nil }
                kind = .lock(entry)
            case .other:
                return nil  // returned before the cause was looked up
            case .emitted:
                kind = .emitted(type: event.type, payload: event.withPayload { Array($0) })
            }
            return Parsed(position: event.position, cause: cause, kind: kind)
        }

        /// The request whose message id has the bytes `id`, a causation id.
        private mutating func cause(_ id: UnsafeRawBufferPointer) -> Int? {
            guard !id.isEmpty else { return nil }
            let found = recent.first { $0 >= 0 && Self.same(ids[$0], id) }
                ?? table.find(RequestTable.hash(id)) { Self.same(ids[$0], id) }
            if let found { remember(found) }
            return found
        }

        private mutating func remember(_ index: Int) {
            // Shifted in place: the list stays four long, -1 where empty.
            var at = recent.firstIndex(of: index) ?? recent.count - 1
            while at > 0 {
                recent[at] = recent[at - 1]
                at -= 1
            }
            recent[0] = index
        }

        private static func same(_ id: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
            id.utf8.withContiguousStorageIfAvailable { utf8 in
                guard utf8.count == bytes.count else { return false }
                guard let left = utf8.baseAddress, let right = bytes.baseAddress else { return true }
                return memcmp(left, right, bytes.count) == 0
            } ?? id.utf8.elementsEqual(bytes)
        }

        /// The service, body frames after the envelope, fork mark and envelope headers of a
        /// `request.received` payload, whose members `forEach` visits in its layout.
        private mutating func request<Member: MessageMember>(_ forEach: ((Member) -> Bool) -> Bool)
            -> (String, [[UInt8]], Bool, [String: String])?
        {
            var service: String?
            var body: ([[UInt8]], Bool)?
            var forked = false
            let valid = forEach { member in
                if member.keyIs("service") {
                    service = member.string
                } else if member.keyIs("body") {
                    body = frames(of: member)
                    return body != nil
                } else if member.keyIs("forkedFromRun") {
                    forked = true
                }
                return true
            }
            guard valid, let service else { return nil }
            let envelope = body?.1 ?? false
            return (service, body?.0 ?? [], forked, envelope ? (try? Envelope.headers(decoding: first)) ?? [:] : [:])
        }

        /// The body frames after the envelope of a reply, and whether an envelope led them.
        private mutating func body(of event: EventView) -> ([[UInt8]], Bool)? {
            let fields = event.payloadEncoding == .fields
            return event.withPayload { payload in
                fields ? body { FieldsPayload.forEach(in: payload, $0) } : body { FlatJSON.forEach(in: payload, $0) }
            }
        }

        private mutating func body<Member: MessageMember>(_ forEach: ((Member) -> Bool) -> Bool)
            -> ([[UInt8]], Bool)?
        {
            var result: ([[UInt8]], Bool)?
            let valid = forEach { member in
                guard member.keyIs("body") else { return true }
                result = frames(of: member)
                return result != nil
            }
            return valid ? result ?? ([], false) : nil
        }

        /// The frames of a body after its envelope, which is left in `first`, and whether there was one.
        private mutating func frames(of member: some MessageMember) -> ([[UInt8]], Bool)? {
            let base64 = type(of: member).framesInBase64
            var frames: [[UInt8]] = []
            var count = 0
            var envelope = false
            let valid = member.forEachFrame { stored in
                count += 1
                guard count > 1 else {
                    if base64 {
                        guard Base64.decode(stored, into: &first) else { return false }
                    } else {
                        first.removeAll(keepingCapacity: true)
                        first.append(contentsOf: stored)
                    }
                    envelope = Envelope.isEnvelope(first)
                    if !envelope { frames.append(first) }
                    return true
                }
                guard let frame = base64 ? Base64.decode(stored) : Array(stored) else { return false }
                frames.append(frame)
                return true
            }
            return valid ? (frames, envelope) : nil
        }
    }

    /// What an event is to replay, told from its type and stream without making strings.
    fileprivate enum EventKind {
        case request, finalReply, partialReply, failed, lock, emitted, other

        init(_ event: EventView) {
            if event.withType({ $0.holds("agent.snapshot") }) {  // StateService.snapshotType
                self = .other
                return
            }
            // Router bookkeeping has no stream; an agent's events have theirs under "agent/", and
            // may be named like the router's.
            if let inStream = event.withStreamID({ $0.isEmpty ? nil : $0.begins(with: "agent/") }) {
                self = inStream ? .emitted : .other
                return
            }
            self = event.withType { type in
                if type.holds("request.received") { return .request }
                if type.holds("reply.final") { return .finalReply }
                if type.holds("reply.partial") { return .partialReply }
                if type.holds("request.failed") { return .failed }
                if type.holds("lock.recorded") { return .lock }
                return .other
            }
        }
    }
}

/// A member of a router message payload, in either layout: JSON, as logs from before the binary
/// field layout hold it, or fields.
protocol MessageMember {
    /// Whether frames are stored as base64 text rather than as they came.
    static var framesInBase64: Bool { get }
    func keyIs(_ name: StaticString) -> Bool
    var string: String? { get }
    /// Calls `body` with each stored frame until it returns false; false when there are none, or it stopped.
    func forEachFrame(_ body: (UnsafeRawBufferPointer) -> Bool) -> Bool
}

extension FlatJSON.Member: MessageMember {
    static var framesInBase64: Bool { true }
    func forEachFrame(_ body: (UnsafeRawBufferPointer) -> Bool) -> Bool { forEachString(body) }
}

extension FieldsPayload.Field: MessageMember {
    static var framesInBase64: Bool { false }
}
