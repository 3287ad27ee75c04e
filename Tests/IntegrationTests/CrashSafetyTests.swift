// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import Testing
import TestSupport

/// A writer process killed with SIGKILL at random moments loses nothing it acknowledged.
@Suite struct CrashSafetyTests {
    @Test func killedWritersLoseNoAcknowledgedAppendAndLeaveNoPartialRecord() async throws {
        try await withTemporaryDirectory { dir in
            var acknowledged: UInt64 = 0
            var kills = 0
            for cycle in 0..<24 {
                let process = Process()
                process.executableURL = productsDirectory.appendingPathComponent("LogAppender")
                process.arguments = [dir, String(1 + (cycle % 4) * 13)]
                let out = Pipe()
                process.standardOutput = out
                try process.run()
                try await Task.sleep(for: .microseconds(Int.random(in: 30_000...300_000)))
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                guard process.terminationReason == .uncaughtSignal else {
                    Issue.record("the appender exited by itself (\(process.terminationStatus)): \(output)")
                    return
                }
                kills += 1

                // Only whole lines count: the kill may cut the last one.
                let acks = output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                    .compactMap { line -> (UInt64, UInt64)? in
                        let parts = line.split(separator: " ")
                        guard parts.count == 3, parts[0] == "ack", let a = UInt64(parts[1]), let b = UInt64(parts[2])
                        else { return nil }
                        return (a, b)
                    }
                for (first, last) in acks {
                    // Each acknowledged batch continues the log: nothing before it went missing.
                    #expect(first > acknowledged)
                    #expect(last >= first)
                    acknowledged = last
                }

                let log: EventLog
                do {
                    log = try EventLog.openReadOnly(at: dir)
                } catch let error as EventLogError where error.code == .notFound && acknowledged == 0 {
                    // Killed before it initialised the log (a slow start): nothing was acknowledged.
                    #expect(acks.isEmpty)
                    continue
                }
                let tail = try log.tail()
                #expect(tail >= acknowledged, "cycle \(cycle): tail \(tail) behind acknowledged \(acknowledged)")
                let report = try log.verify()
                #expect(report.isSound, "cycle \(cycle): \(String(describing: report.problem))")
                #expect(report.lastPosition == tail)
                var expected: UInt64 = 1
                try log.forEachEvent { event in
                    #expect(event.position == expected)
                    #expect(event.payload == appenderPayload(at: event.position))
                    #expect(event.messageID == "m-\(event.position)")
                    expected += 1
                    return true
                }
                #expect(expected == tail + 1)
                acknowledged = tail
            }
            #expect(kills >= 20)
            #expect(acknowledged > 100, "the appender should have committed batches between kills")
            let cli = try await runProduct("switchboard", ["log", "verify", "--data", dir])
            #expect(cli.status == 0, "\(cli.output)\(cli.error)")
        }
    }
}
