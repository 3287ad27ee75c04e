// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwitchboardLog
import SwitchboardWire

/// Reads back from the log what a previous router left open or may not have delivered.
enum RouterRecovery {
    struct Recovered {
        /// Requests received and neither finally answered nor failed, in arrival order.
        var pending: [BrokerStateMachine.Request] = []
        /// The most recent answered native requests and their answers (the newest 10,000).
        var answered: [(BrokerStateMachine.Request, BrokerStateMachine.RecoveredOutcome)] = []
    }

    /// What a `request.received` payload holds, from either layout.
    private struct RequestPayload {
        var service: String
        var client: String
        var framing: String
        var attempt: Int
        var frames: [[UInt8]]

        /// As JSON, with the body's frames in base64 (logs from before the binary field layout).
        private struct JSON: Decodable {
            var service: String
            var client: String
            var framing: String
            var attempt: Int
            var body: [String]
        }

        init?(json payload: [UInt8], decoder: JSONDecoder) {
            guard let json = try? decoder.decode(JSON.self, from: Data(payload)) else { return nil }
            (service, client, framing, attempt) = (json.service, json.client, json.framing, json.attempt)
            frames = json.body.compactMap { Data(base64Encoded: $0).map { [UInt8]($0) } }
        }

        /// Reads the fields of a payload in the binary layout; nil when one is missing or malformed.
        init?(fields payload: [UInt8]) {
            var service: String?, client: String?, framing: String?, attempt: Int64?, frames: [[UInt8]]?
            let valid = payload.withUnsafeBytes { raw in
                FieldsPayload.forEach(in: raw) { field in
                    if field.keyIs("service") { service = field.string }
                    else if field.keyIs("client") { client = field.string }
                    else if field.keyIs("framing") { framing = field.string }
                    else if field.keyIs("attempt") { attempt = field.integer }
                    else if field.keyIs("body") { frames = field.frames }
                    return true
                }
            }
            guard valid, let service, let client, let framing, let attempt, let frames else { return nil }
            (self.service, self.client, self.framing, self.attempt, self.frames)
                = (service, client, framing, Int(attempt), frames)
        }
    }

    private struct AttemptPayload: Decodable {
        var attempt: Int
    }

    private struct FinalPayload: Decodable {
        var body: [String]
    }

    private struct FailurePayload: Decodable {
        var error: String
        var message: String
    }

    static let answeredKept = 10_000
    /// How far back from the tail a restart looks for answers to keep, when it has the projection.
    static let answerWindow: UInt64 = 200_000

    /// Reads pending requests from ``PendingRequestsProjection`` when the log keeps it (the
    /// stored answers then come from the newest events only), and from the whole log otherwise.
    static func recover(from log: EventLog) throws -> Recovered {
        guard log.projectionNames.contains(PendingRequestsProjection.name) else {
            return try scan(log, from: 1, collectPending: true)
        }
        let tail = try log.tail()
        var recovered = try scan(log, from: tail > answerWindow ? tail - answerWindow : 1, collectPending: false)
        let entries = try log.projectionState(named: PendingRequestsProjection.name).entries
            .compactMap { PendingRequestsProjection.decode($0.value) }
            .sorted { $0.position < $1.position }
        let decoder = JSONDecoder()
        for entry in entries {
            guard let event = try log.event(at: entry.position), event.type == RouterEvents.requestReceived,
                  var request = request(from: event.payload, encoding: event.payloadEncoding,
                                        messageID: event.messageID, runID: event.runID,
                                        causationID: event.causationID, receivedWall: event.timestamp,
                                        decoder: decoder)
            else { continue }
            request.attempt += entry.redeliveries
            recovered.pending.append(request)
        }
        return recovered
    }

    /// A logged answer (`reply.final` or `request.failed`) as the outcome to give again; nil for
    /// other events and unreadable payloads.
    static func outcome(of type: String, payload: [UInt8], encoding: PayloadEncoding, decoder: JSONDecoder)
        -> BrokerStateMachine.RecoveredOutcome?
    {
        if type == RouterEvents.replyFinal {
            if encoding == .fields {
                var body: [[UInt8]]?
                let valid = payload.withUnsafeBytes { raw in
                    FieldsPayload.forEach(in: raw) { field in
                        if field.keyIs("body") { body = field.frames }
                        return true
                    }
                }
                return valid ? body.map { .final($0) } : nil
            }
            if let final = try? decoder.decode(FinalPayload.self, from: Data(payload)) {
                return .final(final.body.compactMap { Data(base64Encoded: $0).map { [UInt8]($0) } })
            }
        }
        if type == RouterEvents.requestFailed, let failure = try? decoder.decode(FailurePayload.self, from: Data(payload)) {
            return .failed(code: failure.error, message: failure.message)
        }
        return nil
    }

    /// A logged `request.received` as the request it records.
    static func request(from payload: [UInt8], encoding: PayloadEncoding, messageID: String, runID: String,
                        causationID: String, receivedWall: Timestamp, decoder: JSONDecoder)
        -> BrokerStateMachine.Request?
    {
        guard let request = encoding == .fields
            ? RequestPayload(fields: payload) : RequestPayload(json: payload, decoder: decoder)
        else { return nil }
        let body = request.frames
        let envelope = body.first.flatMap { Envelope.isEnvelope($0) ? try? Envelope(decoding: $0) : nil }
        return BrokerStateMachine.Request(
            messageID: messageID, runID: runID, causationID: causationID, service: request.service,
            client: RouterEvents.unhex(request.client) ?? [],
            clientFraming: request.framing == "delimited" ? .delimited : .plain,
            native: body.first.map(Envelope.isEnvelope) ?? false, body: body,
            attempt: UInt32(clamping: request.attempt), receivedAt: 0, expiresAt: 0, receivedWall: receivedWall,
            key: BrokerStateMachine.Request.instanceKey(of: envelope, runID: runID))
    }

    /// Walks the log from `position`: answered native requests, and (if asked) pending ones.
    private static func scan(_ log: EventLog, from position: UInt64, collectPending: Bool) throws -> Recovered {
        var pending: [String: BrokerStateMachine.Request] = [:]
        var order: [String] = []
        var answered: [(BrokerStateMachine.Request, BrokerStateMachine.RecoveredOutcome)] = []
        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ view: EventView) -> T? {
            try? decoder.decode(type, from: view.withPayload { Data($0) })
        }
        try log.scan(from: position) { view in
            // Only the router's own events, which have no stream: an agent may emit any type.
            guard view.withStreamID(\.isEmpty) else { return true }
            switch view.type {
            case RouterEvents.requestReceived:
                guard let request = request(from: view.withPayload { Array($0) }, encoding: view.payloadEncoding,
                                            messageID: view.messageID, runID: view.runID,
                                            causationID: view.causationID, receivedWall: view.timestamp,
                                            decoder: decoder)
                else { return true }
                pending[view.messageID] = request
                order.append(view.messageID)
            case RouterEvents.requestRedelivered:
                if let attempt = decode(AttemptPayload.self, view) {
                    pending[view.messageID]?.attempt = UInt32(clamping: attempt.attempt)
                }
            case RouterEvents.replyFinal, RouterEvents.requestFailed:
                guard let request = pending.removeValue(forKey: view.causationID), request.native else { return true }
                if let outcome = outcome(of: view.type, payload: view.withPayload { Array($0) },
                                         encoding: view.payloadEncoding, decoder: decoder) {
                    answered.append((request, outcome))
                }
                if answered.count > 2 * answeredKept { answered.removeFirst(answeredKept) }
            default:
                break
            }
            return true
        }
        return Recovered(pending: collectPending ? order.compactMap { pending.removeValue(forKey: $0) } : [],
                         answered: Array(answered.suffix(answeredKept)))
    }
}
