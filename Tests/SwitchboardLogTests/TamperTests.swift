// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import SwitchboardLog
import TestSupport

/// Someone who rewrites a record and fixes its checksum is still caught, by the hash chain.
@Suite struct TamperTests {
    @Test func aRewrittenRecordWithAValidChecksumBreaksTheChain() throws {
        try withTemporaryDirectory { dir in
            let original: RecordedEvent
            do {
                let log = try EventLog.open(at: dir)
                try log.append((1...30).map { jsonEvent("step", "{\"amount\":\($0 == 12 ? 100 : 1)}") })
                original = try #require(try log.event(at: 12))
            }
            // Rebuild the stored bytes of record 12, then forge a copy with a valid checksum.
            var stored = RecordCodec.encode(NewEvent(
                type: original.type, schemaVersion: original.schemaVersion, runID: original.runID,
                streamID: original.streamID, messageID: original.messageID, causationID: original.causationID,
                timestamp: original.timestamp, payload: original.payload, payloadEncoding: original.payloadEncoding))
            _ = RecordCodec.seal(&stored, position: 12, streamVersion: original.streamVersion,
                                 previousHash: original.previousHash)
            var forged = stored
            let digit = try #require(forged.lastIndex(of: UInt8(ascii: "1")))
            forged[digit] = UInt8(ascii: "9")  // amount 100 -> 900
            _ = RecordCodec.seal(&forged, position: 12, streamVersion: original.streamVersion,
                                 previousHash: original.previousHash)

            let url = URL(fileURLWithPath: dir + "/data.mdb")
            var file = try Data(contentsOf: url)
            let range = try #require(file.range(of: Data(stored)))
            file.replaceSubrange(range, with: forged)
            try file.write(to: url)

            let log = try EventLog.openReadOnly(at: dir)
            // The forged record passes its own checksum...
            #expect(try log.event(at: 12)?.payload == Array("{\"amount\":900}".utf8))
            // ...but the next record's link to it no longer matches.
            let report = try log.verify()
            #expect(report.problem?.position == 13)
            #expect(report.problem?.reason.contains("hash chain broken") == true)
        }
    }
}
