// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import Testing
import TestSupport

@Suite struct CommandLineTests {
    @Test func appendStatVerifyAndDumpWorkTogether() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/log"
            for (type, run) in [("run.started", "r1"), ("step", "r2"), ("run.completed", "r1"), ("step", "r2")] {
                let result = try await runProduct("switchboard", [
                    "log", "append", "--data", data, "--type", type, "--run", run, "--stream", run,
                    "--payload", "{\"run\":\"\(run)\"}",
                ])
                #expect(result.status == 0, "\(result.error)")
            }
            let stat = try await runProduct("switchboard", ["log", "stat", "--data", data])
            #expect(stat.status == 0)
            #expect(stat.output.contains("events:         4"))
            #expect(stat.output.contains("last position:  4"))
            #expect(stat.output.contains("runs:           2"))
            #expect(stat.output.contains("file size:"))

            let verify = try await runProduct("switchboard", ["log", "verify", "--data", data])
            #expect(verify.status == 0)
            #expect(verify.output.contains("ok: 4 events"))

            let dump = try await runProduct("switchboard", ["log", "dump", "--data", data])
            let lines = dump.output.split(separator: "\n")
            #expect(lines.count == 4)
            let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(first["type"] as? String == "run.started")
            #expect((first["data"] as? [String: Any])?["run"] as? String == "r1")

            let runDump = try await runProduct("switchboard", ["log", "dump", "--data", data, "--run", "r2", "--limit", "1"])
            #expect(runDump.output.split(separator: "\n").count == 1)
            #expect(runDump.output.contains("\"sbposition\":\"2\""))
            let fromDump = try await runProduct("switchboard", ["log", "dump", "--data", data, "--from", "3", "--limit", "5"])
            #expect(fromDump.output.split(separator: "\n").map { $0.contains("\"id\":\"3\"") } == [true, false])
        }
    }

    /// The binary runs on jemalloc, not glibc's malloc (Package.swift; docs/performance.md says why).
    @Test func theBinaryAllocatesWithJemalloc() async throws {
        let result = try await runProduct("switchboard", ["--help"], environment: ["MALLOC_CONF": "stats_print:true"])
        #expect(result.status == 0)
        #expect(result.error.contains("Begin jemalloc statistics"), "\(result.error.prefix(200))")
    }

    @Test func badInputGetsClearErrors() async throws {
        try await withTemporaryDirectory { dir in
            let missing = try await runProduct("switchboard", ["log", "verify", "--data", dir + "/none"])
            #expect(missing.status == 1)
            #expect(missing.error.contains("no event log"))
            let badJSON = try await runProduct("switchboard", ["log", "append", "--data", dir, "--type", "t", "--payload", "{"])
            #expect(badJSON.status != 0)
            #expect(badJSON.error.contains("not valid JSON"))
            let conflict = try await runProduct("switchboard", [
                "log", "append", "--data", dir, "--type", "t", "--stream", "s", "--expected-version", "3",
            ])
            #expect(conflict.status == 1)
            #expect(conflict.error.contains("stream s is at version 0"))
        }
    }

    @Test(arguments: [["--help"], ["log", "--help"], ["log", "stat", "--help"], ["log", "verify", "--help"],
                      ["log", "dump", "--help"], ["log", "append", "--help"], ["log", "bench", "--help"],
                      ["log", "rebuild", "--help"]])
    func everyCommandExplainsItself(arguments: [String]) async throws {
        let result = try await runProduct("switchboard", arguments)
        #expect(result.status == 0)
        #expect(result.output.contains("USAGE"))
    }
}
