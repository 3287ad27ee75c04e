// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import SwitchboardWire
import Testing
import TestSupport

@testable import SwitchboardRouter

/// Message events are written in the binary field layout; logs written before it hold them as JSON
/// with base64 bodies. A restart reads both alike.
@Suite struct RouterPayloadTests {
    static func request(_ id: String, body: String) throws -> BrokerStateMachine.Request {
        let envelope = try Envelope(messageID: id, runID: "run", causationID: "run/start").encoded()
        return BrokerStateMachine.Request(
            messageID: id, runID: "run", causationID: "run/start", service: "echo", client: [0x00, 0x6B, 0xFF],
            clientFraming: .delimited, native: true, body: [envelope, Array(body.utf8), []], attempt: 2,
            receivedAt: 0, expiresAt: 0, receivedWall: Timestamp(nanosecondsSinceEpoch: 5), key: "run")
    }

    /// The event as a log of before the field layout held it: the same object, as JSON text.
    static func asJSON(_ event: NewEvent) -> NewEvent {
        guard event.payloadEncoding == .fields else { return event }
        let json = event.payload.withUnsafeBytes(FieldsPayload.json) ?? []
        return NewEvent(type: event.type, runID: event.runID, messageID: event.messageID,
                        causationID: event.causationID, timestamp: event.timestamp, payload: json,
                        payloadEncoding: .json)
    }

    /// The router's JSON payloads (lock entries, errors, control replies) are written as bytes:
    /// the same text as the log's string escaper writes, and JSON that parses back to the values.
    @Test func jsonObjectsEscapeAsTheLogsEscaperDoes() throws {
        let values = ["plain", "", "quote \" and \\ backslash", "lines\nand\rreturns\tand tabs",
                      "control \u{01}\u{1F}\u{7F}", "accents é ü, 漢字 and 🎛️", "/slash/"]
        for value in values {
            var object = JSONObject()
            object["key \"\u{02}"] = value
            object.number("n", -42)
            object.bool("b", true)
            var expected = "{"
            JSONText.appendString("key \"\u{02}", to: &expected)
            expected += ":"
            JSONText.appendString(value, to: &expected)
            expected += ",\"n\":-42,\"b\":true}"
            #expect(String(decoding: object.bytes, as: UTF8.self) == expected)
            let parsed = try #require(try JSONSerialization.jsonObject(with: Data(object.bytes)) as? [String: Any])
            #expect(parsed["key \"\u{02}"] as? String == value)
        }
        #expect(JSONObject().bytes == Array("{}".utf8))
    }

    @Test func messageEventsShowAsTheJSONTheyWereWrittenAsBefore() throws {
        let now = Timestamp(nanosecondsSinceEpoch: 5)
        let request = try Self.request("run/start>1", body: #"{"x":1}"#)
        let received = RouterEvents.requestReceived(request, forkedFrom: ("parent", 12), now: now)
        #expect(received.payloadEncoding == .fields)
        let body = request.body.map { "\"\(Data($0).base64EncodedString())\"" }.joined(separator: ",")
        #expect(String(decoding: Self.asJSON(received).payload, as: UTF8.self)
            == #"{"service":"echo","client":"006bff","framing":"delimited","attempt":2,"body":["#
            + body + #"],"forkedFromRun":"parent","forkedFromPosition":12}"#)
        let reply = RouterEvents.reply(request, body: [[1, 2], []], final: true, now: now)
        #expect(String(decoding: Self.asJSON(reply).payload, as: UTF8.self)
            == #"{"service":"echo","client":"006bff","body":["AQI=",""]}"#)
    }

    @Test func aRestartRecoversRequestsAndAnswersFromEitherLayout() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .none, projections: Router.projections))
            let now = Timestamp(nanosecondsSinceEpoch: 5)
            var events: [NewEvent] = []
            let layouts: [(String, (NewEvent) -> NewEvent)] = [("fields", { $0 }), ("json", { Self.asJSON($0) })]
            for (prefix, layout) in layouts {
                let answered = try Self.request("\(prefix)-answered", body: "a")
                let pending = try Self.request("\(prefix)-pending", body: "p")
                events += [RouterEvents.requestReceived(answered, now: now), RouterEvents.requestReceived(pending, now: now),
                           RouterEvents.reply(answered, body: [[9, 8], [7]], final: true, now: now)].map(layout)
            }
            #expect(events.map(\.payloadEncoding) == [.fields, .fields, .fields, .json, .json, .json])
            try log.append(events)
            let recovered = try RouterRecovery.recover(from: log)
            #expect(recovered.pending.map(\.messageID) == ["fields-pending", "json-pending"])
            for request in recovered.pending {
                let expected = try Self.request(request.messageID, body: "p")
                #expect(request.body == expected.body && request.service == "echo" && request.client == expected.client)
                #expect(request.clientFraming == .delimited && request.native && request.attempt == 2)
            }
            #expect(recovered.answered.map(\.0.messageID) == ["fields-answered", "json-answered"])
            for (_, outcome) in recovered.answered {
                guard case .final(let frames) = outcome else {
                    Issue.record("not a final reply: \(outcome)")
                    continue
                }
                #expect(frames == [[9, 8], [7]])
            }
        }
    }

    /// An agent may emit events of any type into its stream: ones named like the router's neither
    /// answer a pending request nor become one at a restart, with the pending projection or without.
    @Test func eventsInAnAgentsStreamAreNotTheRoutersAtARestart() throws {
        for projections in [Router.projections, []] {
            try withTemporaryDirectory { dir in
                let log = try EventLog.open(at: dir, configuration: .init(durability: .none, projections: projections))
                let now = Timestamp(nanosecondsSinceEpoch: 5)
                let pending = try Self.request("pending", body: "p")
                let forged = try Self.request("forged", body: "f")
                func inStream(_ event: NewEvent) -> NewEvent {
                    var event = event
                    event.streamID = "agent/mischief/run"
                    return event
                }
                try log.append([
                    RouterEvents.requestReceived(pending, now: now),
                    inStream(RouterEvents.reply(pending, body: [[1]], final: true, now: now)),
                    inStream(RouterEvents.failed(messageID: "pending", runID: "run", service: "echo", code: "x",
                                                 message: "x", endsRun: false, now: now)),
                    inStream(RouterEvents.requestReceived(forged, now: now)),
                ])
                let recovered = try RouterRecovery.recover(from: log)
                #expect(recovered.pending.map(\.messageID) == ["pending"], "projections: \(projections.map(\.name))")
                #expect(recovered.answered.isEmpty)
            }
        }
    }
}
