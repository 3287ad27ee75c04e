// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import Testing
import TestSupport

/// The router and the agent host are SIGKILLed at random moments under load and restarted at
/// once, on the same data directory and port: every run still completes exactly once.
@Suite(.serialized) struct KillTests {
    static let switchboard = productsDirectory.appendingPathComponent("switchboard")

    static func host(_ endpoint: String) throws -> ChildProcess {
        try ChildProcess(switchboard, ["agent", "--router", endpoint, "--agents", "echo,counter,pipeline",
                                       "--heartbeat", "200"])
    }

    @Test func runsCompleteOnceAcrossKillsOfTheRouterTheHostAndBoth() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/log"
            var router = try await RouterProcess.start(data: data, heartbeat: 200)
            let endpoint = router.endpoint
            var host = try Self.host(endpoint)
            let runs = 1500
            let client = try ChildProcess(Self.switchboard, [
                "run", "pipeline", "--router", endpoint, "--input", #"{"task":"kill"}"#, "--count", String(runs),
                "--concurrency", "32", "--timeout", "120",
            ])
            defer { client.kill() }
            for victim in ["router", "host", "both", "router", "host"] {
                try await Task.sleep(for: .milliseconds(Int.random(in: 150...600)))
                if victim != "host" { router.process.kill() }
                if victim != "router" { host.kill() }
                if victim != "host" {
                    router = try await RouterProcess.start(data: data, bind: endpoint, heartbeat: 200)
                }
                if victim != "router" { host = try Self.host(endpoint) }
            }
            #expect(await client.waitForExit(timeout: 150), "the client did not finish")
            router.process.kill()
            host.kill()
            #expect(client.exitStatus == 0, "\(client.standardOutput)\(client.standardError)")
            #expect(client.standardOutput.contains("\(runs) runs in") && client.standardOutput.contains(", 0 failed"),
                    "\(client.standardOutput)")

            let log = try EventLog.openReadOnly(at: data)
            #expect(try log.events().filter { $0.type == "router.started" }.count == 4)
            let redelivered = try expectEachPipelineRunOnce(in: log, runs: runs)
            // Runs that went through a redelivery replay identical, the router stopped.
            for run in redelivered.sorted().prefix(5) {
                let replay = try await runProduct("switchboard", ["replay", run, "--data", data])
                #expect(replay.status == 0, "\(run): \(replay.output)\(replay.error)")
            }
        }
    }
}
