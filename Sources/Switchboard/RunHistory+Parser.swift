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
                guard let (service, frames, forked, envelope) = event.withPayload({
                    fields ? request(fields: $0) : request($0)
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
                let fields = event.payloadEncoding == .fields
                guard let (frames, envelope) = event.withPayload({ fields ? body(fields: $0) : body($0) })
                else { return nil }
                // An agent's error reply: its ask threw, and must throw again when replayed.
                let error = envelope && (try? Envelope.headers(decoding: first))?["status"] == "error"
                kind = .finalReply(frames: frames, error: error)
            case .partialReply:
                let fields = event.payloadEncoding == .fields
                guard let (frames, _) = event.withPayload({ fields ? body(fields: $0) : body($0) }) else { return nil }
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
        /// `request.received` payload in JSON (logs written before the binary field layout).
        private mutating func request(_ payload: UnsafeRawBufferPointer)
            -> (String, [[UInt8]], Bool, [String: String])?
        {
            var service: String?
            var body: ([[UInt8]], Bool)?
            var forked = false
            let valid = FlatJSON.forEach(in: payload) { member in
                if member.keyIs("service") {
                    service = member.string
                } else if member.keyIs("body") {
                    body = frames { each in member.forEachString { each($0) } }
                    return body != nil
                } else if member.keyIs("forkedFromRun") {
                    forked = true
                }
                return true
            }
            guard valid, let service else { return nil }
            return (service, body?.0 ?? [], forked, headers(envelope: body?.1 ?? false))
        }

        /// The same, from a payload in the binary field layout: the frames are copied, not decoded.
        private mutating func request(fields payload: UnsafeRawBufferPointer)
            -> (String, [[UInt8]], Bool, [String: String])?
        {
            var service: String?
            var body: ([[UInt8]], Bool)?
            var forked = false
            let valid = FieldsPayload.forEach(in: payload) { field in
                if field.keyIs("service") {
                    service = field.string
                } else if field.keyIs("body") {
                    body = frames(base64: false) { each in field.forEachFrame { each($0) } }
                    return body != nil
                } else if field.keyIs("forkedFromRun") {
                    forked = true
                }
                return true
            }
            guard valid, let service else { return nil }
            return (service, body?.0 ?? [], forked, headers(envelope: body?.1 ?? false))
        }

        /// The headers of the envelope left in `first`, when there was one.
        private func headers(envelope: Bool) -> [String: String] {
            envelope ? (try? Envelope.headers(decoding: first)) ?? [:] : [:]
        }

        /// The body frames after the envelope of a reply payload in JSON, and whether an envelope led them.
        private mutating func body(_ payload: UnsafeRawBufferPointer) -> ([[UInt8]], Bool)? {
            var result: ([[UInt8]], Bool)?
            let valid = FlatJSON.forEach(in: payload) { member in
                guard member.keyIs("body") else { return true }
                result = frames { each in member.forEachString { each($0) } }
                return result != nil
            }
            return valid ? result ?? ([], false) : nil
        }

        /// The same, from a payload in the binary field layout.
        private mutating func body(fields payload: UnsafeRawBufferPointer) -> ([[UInt8]], Bool)? {
            var result: ([[UInt8]], Bool)?
            let valid = FieldsPayload.forEach(in: payload) { field in
                guard field.keyIs("body") else { return true }
                result = frames(base64: false) { each in field.forEachFrame { each($0) } }
                return result != nil
            }
            return valid ? result ?? ([], false) : nil
        }

        /// The frames of a body after its envelope, which is left in `first`, and whether there was
        /// one; `forEach` hands over each frame as stored, base64 text unless `base64` is false.
        private mutating func frames(base64: Bool = true,
                                     _ forEach: ((UnsafeRawBufferPointer) -> Bool) -> Bool) -> ([[UInt8]], Bool)? {
            var frames: [[UInt8]] = []
            var count = 0
            var envelope = false
            let valid = forEach { stored in
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
            let kind: EventKind? = event.withType { type in
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
}
