// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import Testing
import TestSupport

@Suite struct MultiProcessTests {
    /// Starts LogAppender and waits for its first acknowledged append.
    func startAppender(_ dir: String, batch: Int, count: Int, mapSize: Int = 64 << 20, payload: Int = 64)
        throws -> (Process, FileHandle)
    {
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("LogAppender")
        process.arguments = [dir, String(batch), String(count), String(mapSize), String(payload)]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += chunk
        }
        return (process, out.fileHandleForReading)
    }

    @Test func aReaderInAnotherProcessSeesAConsistentGrowingLog() throws {
        try withTemporaryDirectory { dir in
            // A 1 MiB map that must grow many times while this process reads.
            let total: UInt64 = 40_000
            let (writer, output) = try startAppender(dir, batch: 50, count: Int(total), mapSize: 1 << 20, payload: 300)
            let reader = try EventLog.openReadOnly(at: dir)
            var checked: UInt64 = 0
            var rounds = 0
            while true {
                let running = writer.isRunning
                let tail = try reader.tail()
                #expect(tail >= checked)
                for event in try reader.events(from: checked + 1) {
                    #expect(event.position == checked + 1)
                    #expect(event.payload == appenderPayload(at: event.position, size: 300))
                    checked = event.position
                }
                rounds += 1
                if !running { break }
            }
            writer.waitUntilExit()
            _ = output.readDataToEndOfFile()
            #expect(writer.terminationStatus == 0)
            #expect(checked == total)
            #expect(rounds > 1)
            let stats = try reader.statistics()
            #expect(stats.mapSize > 1 << 20)
            #expect(try reader.verify().isSound)
        }
    }

    @Test func aSecondWriterProcessIsRefusedWithTheHoldersPid() throws {
        try withTemporaryDirectory { dir in
            let (writer, _) = try startAppender(dir, batch: 1, count: 1_000_000)
            defer {
                kill(writer.processIdentifier, SIGKILL)
                writer.waitUntilExit()
            }
            let result = try runProduct("switchboard", ["log", "append", "--data", dir, "--type", "x"])
            #expect(result.status == 1)
            #expect(result.error.contains("open for writing by another process (pid \(writer.processIdentifier))"))
            // Readers are welcome meanwhile.
            let stat = try runProduct("switchboard", ["log", "stat", "--data", dir])
            #expect(stat.status == 0, "\(stat.error)")
        }
    }
}
