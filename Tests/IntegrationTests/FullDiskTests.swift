// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import Testing
import TestSupport

/// The router's log runs out of room under load. The room is a file-size limit on the router's
/// process (`ulimit -f`; the router ignores SIGXFSZ, the test appender has it ignored for it): the
/// commit's writes fail as on a full file system, a short write and then an error, without
/// needing a file system of our own.
@Suite(.serialized) struct FullDiskTests {
    static let switchboard = productsDirectory.appendingPathComponent("switchboard")

    /// `executable` with `arguments`, its files limited to `kilobytes` KiB (`ulimit -f` counts
    /// 512-byte blocks in a POSIX shell); SIGXFSZ ignored for it when `ignoringSignal`.
    static func limited(_ kilobytes: Int, _ executable: String, _ arguments: [String], ignoringSignal: Bool = false)
        throws -> ChildProcess
    {
        let trap = ignoringSignal ? "trap '' XFSZ && " : ""
        return try ChildProcess(URL(fileURLWithPath: "/bin/sh"),
                                ["-c", "ulimit -f \(kilobytes * 2) && \(trap)exec \"$0\" \"$@\"", executable]
                                    + arguments)
    }

    @Test func anAppendOutOfRoomFailsWholeSaysWhyAndTheLogGoesOnOnceThereIsRoom() async throws {
        try await withTemporaryDirectory { dir in
            let appender = productsDirectory.appendingPathComponent("LogAppender").path
            // Batches of 50 events of 1 KiB: a few fill 1 MiB.
            let limited = try Self.limited(1024, appender, [dir, "50", "100000", String(64 << 20), "1024"],
                                           ignoringSignal: true)
            #expect(await limited.waitForExit(timeout: 60))
            #expect(limited.exitStatus == 1)
            let output = limited.standardOutput
            #expect(output.contains("error: storage error: mdb_txn_commit"), "\(output)")
            #expect(output.contains("reached this process's file-size limit of 1048576 bytes"), "\(output)")
            let acknowledged = output.split(separator: "\n").compactMap { line -> UInt64? in
                let parts = line.split(separator: " ")
                return parts.count == 3 && parts[0] == "ack" ? UInt64(parts[2]) : nil
            }.last ?? 0
            #expect(acknowledged > 0, "nothing was appended before the limit")
            do {
                // Every acknowledged event is there, and nothing of the failed batch.
                let log = try EventLog.openReadOnly(at: dir)
                #expect(try log.tail() == acknowledged)
                #expect(try log.verify().isSound)
            }
            // With room again, the same log takes more, after what it had.
            let more = try ChildProcess(URL(fileURLWithPath: appender), [dir, "50", "100", String(64 << 20), "1024"])
            #expect(await more.waitForExit(timeout: 60))
            #expect(more.exitStatus == 0, "\(more.standardOutput)")
            let log = try EventLog.openReadOnly(at: dir)
            #expect(try log.tail() == acknowledged + 100)
            #expect(try log.verify().isSound)
            try log.forEachEvent { event in
                #expect(event.payload == appenderPayload(at: event.position, size: 1024))
                return true
            }
        }
    }

    @Test func aRouterOutOfRoomStopsWithAClearErrorAndARestartCompletesEveryRunOnce() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/log"
            let router = try Self.limited(2048, Self.switchboard.path, [
                "router", "--data", data, "--bind", "tcp://127.0.0.1:*", "--heartbeat", "200",
            ])
            defer { router.kill() }
            let line = try #require(await router.waitForLine { $0.hasPrefix("router listening on ") },
                                    "router did not start: \(router.standardError)")
            let endpoint = String(line.dropFirst("router listening on ".count))
            let host = try ChildProcess(Self.switchboard, ["agent", "--router", endpoint, "--agents",
                                                           "echo,counter,pipeline", "--heartbeat", "200"])
            defer { host.kill() }
            // Enough runs to fill 2 MiB several times over.
            let runs = 600
            let client = try ChildProcess(Self.switchboard, [
                "run", "pipeline", "--router", endpoint, "--input", #"{"task":"disk"}"#, "--count", String(runs),
                "--concurrency", "16", "--timeout", "120",
            ])
            defer { client.kill() }

            // The commit that finds no room stops the router, and it says why.
            #expect(await router.waitForExit(timeout: 90), "the router never ran out of room")
            #expect(router.exitStatus == 1)
            let error = router.standardError
            #expect(error.contains("storage error: mdb_txn_commit"), "\(error)")
            #expect(error.contains("reached this process's file-size limit"), "\(error)")
            #expect(error.contains("nothing of this write was committed"), "\(error)")
            #expect(error.contains("redelivers the requests it committed"), "\(error)")
            #expect(client.isRunning, "the client gave up while the router was down: \(client.standardError)")
            do {
                let log = try EventLog.openReadOnly(at: data)
                #expect(try log.verify().isSound)
                let answered = try log.events().filter { $0.type == "reply.final" && $0.messageID.hasSuffix("/start/final") }
                #expect(answered.count < runs, "the router ran out of room after every run had ended")
            }

            // A run started while the router is down waits for it, through catch-up reads that time out.
            let single = try ChildProcess(Self.switchboard, [
                "run", "pipeline", "--router", endpoint, "--input", #"{"task":"later"}"#, "--timeout", "120",
            ])
            defer { single.kill() }
            try await Task.sleep(for: .seconds(6))

            // Room again: a router on the same data and port, no limit. The client asks again for
            // the runs the first router never committed; the host asks again for its open asks.
            let restarted = try await RouterProcess.start(data: data, bind: endpoint, heartbeat: 200)
            defer { restarted.process.kill() }
            #expect(await client.waitForExit(timeout: 150), "the client did not finish")
            #expect(client.exitStatus == 0, "\(client.standardOutput)\(client.standardError)")
            #expect(client.standardOutput.contains("\(runs) runs in"), "\(client.standardOutput)")
            #expect(client.standardOutput.contains(", 0 failed"), "\(client.standardOutput)")
            #expect(await single.waitForExit(timeout: 60), "the single run did not finish")
            #expect(single.exitStatus == 0, "\(single.standardOutput)\(single.standardError)")
            #expect(single.standardOutput.contains(#"result: {"input":{"task":"later"}"#), "\(single.standardOutput)")
            #expect(single.standardError.contains("is not answering; waiting for it"), "\(single.standardError)")
            restarted.process.kill()

            let log = try EventLog.openReadOnly(at: data)
            try expectEachPipelineRunOnce(in: log, runs: runs + 1)
            #expect(try log.runs().filter { $0.state == .completed }.count >= runs + 1)
        }
    }
}
