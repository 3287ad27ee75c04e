// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import Testing
import TestSupport

@Suite struct CorruptionTests {
    @Test func aFlippedByteIsReportedWithItsPositionByReadsAndByVerify() throws {
        try withTemporaryDirectory { dir in
            let marker = "MARKER-7f3a9c"
            do {
                let log = try EventLog.open(at: dir)
                // One transaction: the record exists once in the file, not in older page copies too.
                try log.append((1...50).map { index in
                    jsonEvent("step", "{\"v\":\"\(index == 20 ? marker : "plain-\(index)")\"}")
                })
            }
            let file = dir + "/data.mdb"
            var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            let ranges = occurrences(of: Data(marker.utf8), in: bytes)
            try #require(ranges.count == 1)
            bytes[ranges[0].lowerBound + 3] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: file))

            let log = try EventLog.openReadOnly(at: dir)
            #expect(try log.event(at: 19)?.position == 19)
            #expect(try log.event(at: 21)?.position == 21)
            do {
                _ = try log.event(at: 20)
                Issue.record("the damaged record was read without error")
            } catch let error as EventLogError {
                #expect(error.code == .corruptRecord)
                #expect(error.position == 20)
                #expect(error.message.contains("position 20"))
            }
            #expect { try log.events() } throws: { ($0 as? EventLogError)?.position == 20 }
            let report = try log.verify()
            #expect(report.problem?.position == 20)
            #expect(report.eventsChecked == 19)

            let cli = try runProduct("switchboard", ["log", "verify", "--data", dir])
            #expect(cli.status == 1)
            #expect(cli.output.contains("position 20"))
            #expect(cli.output.contains("checksum mismatch"))
        }
    }

    private func occurrences(of needle: Data, in haystack: Data) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = haystack.startIndex
        while let range = haystack.range(of: needle, in: start..<haystack.endIndex) {
            result.append(range)
            start = range.upperBound
        }
        return result
    }
}
