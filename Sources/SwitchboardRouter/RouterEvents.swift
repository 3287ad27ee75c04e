// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire

/// The events the router commits (docs/events.md, "Router events"). Payloads are JSON, but for
/// messages and replies, whose fields are in the binary layout of ``FieldsPayload`` and show as JSON
/// with their bodies as arrays of base64 frames.
enum RouterEvents {
    static let requestReceived = "request.received"
    static let replyPartial = "reply.partial"
    static let replyFinal = "reply.final"
    static let requestFailed = "request.failed"
    static let requestRedelivered = "request.redelivered"
    static let workerJoinedType = "worker.joined"
    static let workerLeftType = "worker.left"
    static let routerStarted = "router.started"
    static let lockRecordedType = "lock.recorded"
    static let runForked = "run.forked"

    /// - Parameter forkedFrom: the parent run and position of the request whose answer a fork reuses.
    /// Written in the binary field layout (``PayloadEncoding/fields``), as are replies: the body is
    /// stored as it came instead of as base64 in JSON text, which replay and recovery would decode.
    static func requestReceived(_ request: BrokerStateMachine.Request, forkedFrom: (run: String, position: UInt64)? = nil,
                                now: Timestamp) -> NewEvent {
        // Room for the fixed fields and the ids: growing the payload would copy it.
        var fields = FieldsPayload.Writer(capacity: 160 + request.service.utf8.count + request.client.count * 2
                                              + request.body.reduce(0) { $0 + 4 + $1.count })
        fields.string("service", request.service)
        fields.hexString("client", request.client)
        fields.string("framing", request.clientFraming.description)
        fields.integer("attempt", Int(request.attempt))
        fields.frames("body", request.body)
        if let forkedFrom {
            fields.string("forkedFromRun", forkedFrom.run)
            fields.integer("forkedFromPosition", Int(clamping: forkedFrom.position))
        }
        return NewEvent(type: requestReceived, runID: request.runID, messageID: request.messageID,
                        causationID: request.causationID, timestamp: now, payload: fields.bytes,
                        payloadEncoding: .fields)
    }

    /// - Parameter ends: how the request ended (`completed` or `failed`), for the final reply to a
    ///   request with no causation id: the run-status projection reads it.
    static func reply(_ request: BrokerStateMachine.Request, body: [[UInt8]], final: Bool, ends: RunState? = nil,
                      now: Timestamp) -> NewEvent
    {
        var fields = FieldsPayload.Writer(capacity: 96 + request.service.utf8.count + request.client.count * 2
                                              + body.reduce(0) { $0 + 4 + $1.count })
        fields.string("service", request.service)
        fields.hexString("client", request.client)
        fields.frames("body", body)
        // Read by the run-status projection (RunState.ending).
        if let ends { fields.string("run", ends.rawValue) }
        return NewEvent(type: final ? replyFinal : replyPartial, runID: request.runID,
                        messageID: request.messageID + (final ? "/final" : "/partial"), causationID: request.messageID,
                        timestamp: now, payload: fields.bytes, payloadEncoding: .fields)
    }

    /// - Parameter endsRun: the request had no causation id (a client's): the run-status projection reads it.
    static func failed(messageID: String, runID: String, service: String, code: String, message: String,
                       endsRun: Bool = false, now: Timestamp) -> NewEvent {
        var json = JSONObject()
        json["service"] = service
        json["error"] = code
        json["message"] = message
        if endsRun { json["run"] = RunState.failed.rawValue }
        return event(requestFailed, runID, messageID: messageID + "/error", causation: messageID, json, now)
    }

    /// An event an agent emitted, as it carried it; the run is the carrying message's.
    static func emitted(_ emitted: EmittedEvent, runID: String, now: Timestamp) -> NewEvent {
        NewEvent(type: emitted.type, schemaVersion: emitted.schemaVersion, runID: runID, streamID: emitted.streamID,
                 messageID: emitted.messageID, causationID: emitted.causationID, timestamp: now,
                 payload: emitted.payload, payloadEncoding: .json)
    }

    /// An entry of a run's determinism lock: the version and config digest of a service it used.
    static func lockRecorded(runID: String, service: String, version: String, configDigest: String,
                             causationID: String, now: Timestamp) -> NewEvent {
        var json = JSONObject()
        json["service"] = service
        json["version"] = version
        json["configDigest"] = configDigest
        return event(lockRecordedType, runID, messageID: "", causation: causationID, json, now)
    }

    /// The first event of a fork: its parent and the position its borrowed history ends at.
    static func forked(_ link: LogAnswers.ForkLink, runID: String, now: Timestamp) -> NewEvent {
        var json = JSONObject()
        json["parent"] = link.parent
        json.number("until", Int(clamping: link.until))
        json["origin"] = link.origin
        json["root"] = link.root
        return event(runForked, runID, messageID: link.root + "/forked", causation: "", json, now)
    }

    static func redelivered(_ request: BrokerStateMachine.Request, reason: String, now: Timestamp) -> NewEvent {
        var json = JSONObject()
        json["service"] = request.service
        json.number("attempt", Int(request.attempt))
        json["reason"] = reason
        return event(requestRedelivered, request.runID, messageID: request.messageID, causation: "", json, now)
    }

    static func workerJoined(_ identity: [UInt8], service: String, capacity: Int, metadata: WorkerMetadata?,
                             framing: MDPFraming, now: Timestamp) -> NewEvent {
        var json = JSONObject()
        json["service"] = service
        json["worker"] = hex(identity)
        json["framing"] = framing.description
        json.number("capacity", capacity)
        if let metadata {
            json["version"] = metadata.version
            json["configDigest"] = metadata.configDigest
        }
        return event(workerJoinedType, "", messageID: "", causation: "", json, now)
    }

    static func workerLeft(_ identity: [UInt8], service: String, reason: String, now: Timestamp) -> NewEvent {
        var json = JSONObject()
        json["service"] = service
        json["worker"] = hex(identity)
        json["reason"] = reason
        return event(workerLeftType, "", messageID: "", causation: "", json, now)
    }

    static func started(endpoint: String, recovered: Int, now: Timestamp) -> NewEvent {
        var json = JSONObject()
        json["endpoint"] = endpoint
        json.number("recovered", recovered)
        return event(routerStarted, "", messageID: "", causation: "", json, now)
    }

    /// The body of an error FINAL.
    static func errorBody(code: String, message: String) -> [UInt8] {
        var json = JSONObject()
        json["error"] = code
        json["message"] = message
        return json.bytes
    }

    static func event(_ type: String, _ runID: String, messageID: String, causation: String,
                              _ json: JSONObject, _ now: Timestamp) -> NewEvent {
        NewEvent(type: type, runID: runID, messageID: messageID, causationID: causation, timestamp: now,
                 payload: json.bytes, payloadEncoding: .json)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        Hex.encode(bytes)
    }

    static func unhex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30...0x39: digit - 0x30
        case 0x61...0x66: digit - 0x61 + 10
        default: nil
        }
    }
}

/// A flat JSON object written in insertion order, as UTF-8 bytes: the router writes one for
/// every lock entry and error, and a `String` built piece by piece is slow to grow and to count.
struct JSONObject {
    private(set) var bytes: [UInt8]

    init() {
        bytes = []
        bytes.reserveCapacity(128)
        bytes.append(UInt8(ascii: "{"))
        bytes.append(UInt8(ascii: "}"))
    }

    private mutating func key(_ name: String) {
        bytes.removeLast()
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        JSONText.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    subscript(name: String) -> String? {
        get { nil }
        set {
            guard let newValue else { return }
            key(name)
            JSONText.appendString(newValue, to: &bytes)
            bytes.append(UInt8(ascii: "}"))
        }
    }

    mutating func number(_ name: String, _ value: Int) {
        key(name)
        bytes.append(contentsOf: String(value).utf8)
        bytes.append(UInt8(ascii: "}"))
    }

    /// Adds `json`, which must be valid JSON text, as it is.
    mutating func raw(_ name: String, _ json: String) {
        key(name)
        bytes.append(contentsOf: json.utf8)
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func bool(_ name: String, _ value: Bool) {
        key(name)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
        bytes.append(UInt8(ascii: "}"))
    }
}
