// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import TestSupport
@testable import Switchboard
import SwitchboardLog

/// Logs written before the router stored message events in the binary field layout hold them as
/// JSON with base64 bodies: they replay as they did, and a drift in them is still found.
@Suite struct PayloadLayoutReplayTests {
    /// Run `runID` copied to a new log with every message event as JSON text, as older routers wrote it;
    /// `change` may alter an ask's JSON payload on the way.
    func jsonCopy(of runID: String, from log: EventLog, to directory: String,
                  change: (RecordedEvent, [UInt8]) -> [UInt8] = { $1 }) throws -> EventLog {
        let copy = try EventLog.open(at: directory)
        try copy.append(try log.events(inRun: runID).map { event in
            NewEvent(type: event.type, schemaVersion: event.schemaVersion, runID: event.runID,
                     streamID: event.streamID, messageID: event.messageID, causationID: event.causationID,
                     timestamp: event.timestamp, payload: change(event, event.jsonPayload), payloadEncoding: .json)
        })
        return copy
    }

    @Test func aRunLoggedAsJSONReplaysIdenticalAndItsDriftIsFound() async throws {
        try await withTemporaryDirectory { directory in
            let embedded = try Embedded(directory: directory + "/live", types: BuiltinAgents.all)
            let results = try await embedded.serving { embedded in
                try await embedded.runs("pipeline", inputs: [Payload(text: #"{"task":"a"}"#)])
            }
            try embedded.router.stop()
            let log = embedded.router.router.log
            let runID = try #require(results.first).runID
            let recorded = try log.events(inRun: runID)
            #expect(recorded.filter { $0.payloadEncoding == .fields }.map(\.type).count == 8)

            let copy = try jsonCopy(of: runID, from: log, to: directory + "/json")
            let asked = try copy.events(inRun: runID).filter { $0.type == "request.received" }
            #expect(asked.count == 4 && asked.allSatisfy { $0.payloadEncoding == .json })
            let first = try #require(try JSONSerialization.jsonObject(with: Data(asked[1].payload)) as? [String: Any])
            #expect(first["service"] as? String == "echo")
            #expect((first["body"] as? [String])?.count == 2)

            let original = try await Replayer.replay(run: runID, log: log, types: BuiltinAgents.all)
            let replayed = try await Replayer.replay(run: runID, log: copy, types: BuiltinAgents.all)
            #expect(original.exitCode == 0 && replayed.exitCode == 0, "\(String(describing: replayed.divergence))")
            #expect(replayed.eventsRead == original.eventsRead && replayed.stepsChecked == original.stepsChecked)
            #expect(replayed.messagesReplayed == original.messagesReplayed && replayed.messagesReplayed == 4)

            // The counter's ask, recorded with another argument: the replayed one differs from it.
            let changed = try jsonCopy(of: runID, from: log, to: directory + "/changed") { event, json in
                guard event.type == "request.received", String(decoding: json, as: UTF8.self).contains("\"counter\"")
                else { return json }
                let text = String(decoding: json, as: UTF8.self)
                let argument = Data(#"{"add":1}"#.utf8).base64EncodedString()
                #expect(text.contains(argument))
                return Array(text.replacingOccurrences(of: argument, with: Data(#"{"add":2}"#.utf8).base64EncodedString()).utf8)
            }
            let drifted = try await Replayer.replay(run: runID, log: changed, types: BuiltinAgents.all)
            #expect(drifted.exitCode == 1)
            let divergence = try #require(drifted.divergence)
            #expect(divergence.position == asked[2].position, "\(divergence)")
        }
    }
}
