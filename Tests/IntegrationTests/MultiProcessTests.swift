// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import Testing
import TestSupport

@Suite struct MultiProcessTests {
    /// Starts LogAppender and waits for its first acknowledged append. With `paused` it goes on only
    /// once a line is written to the returned input.
    func startAppender(
        _ dir: String, batch: Int, count: Int, mapSize: Int = 64 << 20, payload: Int = 64, paused: Bool = false
    ) throws -> (Process, FileHandle, input: FileHandle) {
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("LogAppender")
        process.arguments = [dir, String(batch), String(count), String(mapSize), String(payload)]
            + (paused ? ["pause"] : [])
        let out = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardInput = input
        try process.run()
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += chunk
        }
        return (process, out.fileHandleForReading, input.fileHandleForWriting)
    }

    @Test func aReaderInAnotherProcessSeesAConsistentGrowingLog() throws {
        try withTemporaryDirectory { dir in
            // A 1 MiB map that must grow many times while this process reads: the writer waits after
            // its first batch until the reader is open and has read it.
            let total: UInt64 = 40_000
            let (writer, output, input) = try startAppender(
                dir, batch: 50, count: Int(total), mapSize: 1 << 20, payload: 300, paused: true)
            let reader = try EventLog.openReadOnly(at: dir)
            #expect(try reader.statistics().fileSize <= 1 << 20)
            var checked: UInt64 = 0
            var rounds = 0
            while true {
                if rounds == 1 {
                    #expect(checked == 50)
                    try input.write(contentsOf: Array("go\n".utf8))
                }
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
            // The writer's map grew past its first 1 MiB while this reader was open.
            #expect(try reader.statistics().fileSize > 1 << 20)
            #expect(try reader.verify().isSound)
        }
    }

    @Test func aSecondWriterProcessIsRefusedWithTheHoldersPid() async throws {
        try await withTemporaryDirectory { dir in
            let (writer, _, _) = try startAppender(dir, batch: 1, count: 1_000_000)
            defer {
                kill(writer.processIdentifier, SIGKILL)
                writer.waitUntilExit()
            }
            let result = try await runProduct("switchboard", ["log", "append", "--data", dir, "--type", "x"])
            #expect(result.status == 1)
            #expect(result.error.contains("open for writing by another process (pid \(writer.processIdentifier))"))
            // Readers are welcome meanwhile.
            let stat = try await runProduct("switchboard", ["log", "stat", "--data", dir])
            #expect(stat.status == 0, "\(stat.error)")
        }
    }
}
