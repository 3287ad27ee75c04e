// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Switchboard
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire
import Testing
import TestSupport

/// Calls of the counting echo below, per message id.
let countedEchoCalls = Mutex<[String: Int]>([:])

/// `echo`, slowed down and counting each call: proves that recovery asks nothing twice.
actor CountingEcho: Agent {
    static let descriptor = Echo.descriptor
    var state = NoState()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<CountingEcho>) async throws -> Payload {
        countedEchoCalls.withLock { $0[message.messageID, default: 0] += 1 }
        try await Task.sleep(for: .milliseconds(300))
        return message.payload
    }
}

/// `echo` that answers only once the gate is open: holds a handler mid-run for as long as a test needs.
actor GatedEcho: Agent {
    static let descriptor = Echo.descriptor
    static let gate = Atomic<Bool>(false)
    static let asked = Atomic<Int>(0)
    var state = NoState()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<GatedEcho>) async throws -> Payload {
        Self.asked.add(1, ordering: .relaxed)
        while !Self.gate.load(ordering: .relaxed) {
            try await Task.sleep(for: .milliseconds(10))
        }
        return message.payload
    }
}

/// `switchboard agent` processes against a router, killed and restarted; `switchboard run`,
/// `replay` and `lock show` as a user runs them.
@Suite(.serialized) struct AgentProcessTests {
    static let switchboard = productsDirectory.appendingPathComponent("switchboard")

    func agentProcess(_ endpoint: String, _ agents: String) throws -> ChildProcess {
        let process = try ChildProcess(Self.switchboard, ["agent", "--router", endpoint, "--agents", agents,
                                                          "--heartbeat", "100"])
        #expect(process.waitForLine { $0.hasPrefix("agents ") } != nil, "\(process.standardError)")
        return process
    }

    /// A router on a loopback port that waits a minute for a service's first worker, and a host in
    /// this process for the services the pipeline asks: `echo` as given, and the counter.
    static func routerAndServices(_ directory: String, echo: AgentType) throws -> (EmbeddedRouter, AgentHost) {
        let router = try EmbeddedRouter(
            directory: directory + "/log",
            configuration: RouterConfiguration(endpoint: "tcp://127.0.0.1:*", heartbeatInterval: 100,
                                               unknownServiceGrace: 60_000))
        let services = try AgentHost(
            types: [echo, AgentType(Counter.self)],
            configuration: .init(endpoint: router.endpoint, heartbeatInterval: 100), context: router.context)
        return (router, services)
    }

    @Test func killedAgentHostMidRunRecoversOnARestartedHostAndAsksNothingTwice() async throws {
        try await withTemporaryDirectory { directory in
            // The services the pipeline asks, in this process: a counting echo and the counter.
            let (router, services) = try Self.routerAndServices(directory, echo: AgentType(CountingEcho.self))
            let endpoint = router.endpoint
            let context = router.context
            var first: ChildProcess? = try agentProcess(endpoint, "pipeline")
            var second: ChildProcess?
            let results = try await withThrowingTaskGroup(of: [RunClient.Result]?.self) { group in
                group.addTask {
                    await services.run()
                    return nil
                }
                group.addTask {
                    try await onThread {
                        let client = try RunClient(context: context, endpoint: endpoint)
                        for name in ["pipeline", "echo", "counter"] {
                            try #require(try client.waitForService(name, timeout: 120_000))
                        }
                        for index in 0..<8 { try client.start("pipeline", input: Payload(text: "{\"n\":\(index)}")) }
                        var results: [RunClient.Result] = []
                        while results.count < 8, let result = try client.nextResult(timeout: 30_000) {
                            results.append(result)
                        }
                        return results
                    }
                }
                // Mid-run: the pipelines wait on their first ask. Kill their host, start another.
                while countedEchoCalls.withLock({ $0.isEmpty }) {
                    try await Task.sleep(for: .milliseconds(5))
                }
                first?.kill()
                first = nil
                second = try agentProcess(endpoint, "pipeline")
                var results: [RunClient.Result] = []
                while let next = try await group.next() {
                    if let next {
                        results = next
                        await services.shutdown()
                    }
                }
                return results
            }
            second?.kill()
            try router.stop()

            #expect(results.count == 8)
            #expect(results.allSatisfy { $0.error == nil })
            // Counter called once per run (a second call would make the total 2).
            #expect(results.allSatisfy { $0.payload.text.contains(#""counter":{"total":1}"#) })
            let calls = countedEchoCalls.withLock { calls in calls.filter { key, _ in
                results.contains { key.hasPrefix($0.runID + "/") }
            } }
            #expect(calls.count == 16, "two echo asks per run")
            #expect(calls.values.allSatisfy { $0 == 1 }, "\(calls)")

            let log = router.router.log
            var redelivered = 0
            let types = [AgentType(Pipeline.self), AgentType(CountingEcho.self), AgentType(Counter.self)]
            for result in results {
                let events = try log.events(inRun: result.runID)
                redelivered += events.filter { $0.type == "request.redelivered" }.count
                #expect(events.filter { $0.type == "pipeline.step" }.count == 3)
                let report = try await Replayer.replay(run: result.runID, log: log, types: types)
                #expect(report.exitCode == 0, "\(String(describing: report.divergence))")
            }
            #expect(redelivered >= 8, "every pipeline was redelivered after the kill")
        }
    }

    @Test func sigtermDrainsTheHandlerUnderWayAndLeavesNewMessagesToAnotherHost() async throws {
        try await withTemporaryDirectory { directory in
            let (router, services) = try Self.routerAndServices(directory, echo: AgentType(GatedEcho.self))
            let endpoint = router.endpoint
            let context = router.context
            let first = try agentProcess(endpoint, "pipeline")
            let servicesTask = Task { await services.run() }
            let (results, second) = try await onThread { () throws -> ([RunClient.Result], ChildProcess) in
                let client = try RunClient(context: context, endpoint: endpoint)
                for name in ["pipeline", "echo", "counter"] {
                    try #require(try client.waitForService(name, timeout: 120_000))
                }
                let a = try client.start("pipeline", input: Payload(text: #"{"run":"a"}"#))
                // A's handler is under way in the first host, waiting on its first ask.
                while GatedEcho.asked.load(ordering: .relaxed) == 0 { usleep(5000) }
                kill(first.pid, SIGTERM)
                usleep(500_000)
                // B reaches the draining host, which does not start it.
                let b = try client.start("pipeline", input: Payload(text: #"{"run":"b"}"#))
                usleep(500_000)
                #expect(GatedEcho.asked.load(ordering: .relaxed) == 1, "the draining host started B")
                GatedEcho.gate.store(true, ordering: .relaxed)
                let finishedA = try #require(try client.nextResult(timeout: 30_000))
                #expect(finishedA.runID == a)
                #expect(first.waitForExit(timeout: 30), "the drained host did not exit")
                // B waits at the router for a host; a new one serves it.
                let second = try self.agentProcess(endpoint, "pipeline")
                let finishedB = try #require(try client.nextResult(timeout: 30_000))
                #expect(finishedB.runID == b)
                return ([finishedA, finishedB], second)
            }
            second.kill()
            await services.shutdown()
            _ = await servicesTask.value
            try router.stop()
            #expect(first.exitStatus == 0, "\(first.standardError)")
            #expect(first.standardOutput.contains("agent host stopped after 1 messages"), "\(first.standardOutput)")
            #expect(results.allSatisfy { $0.error == nil && $0.payload.text.contains(#""counter":{"total":1}"#) })
            let log = router.router.log
            let left = try log.events(from: 1).filter { $0.type == "worker.left" }
                .map { String(decoding: $0.payload, as: UTF8.self) }
            #expect(left.contains { $0.contains("\"pipeline\"") && $0.contains("disconnect") }, "\(left)")
            let b = try log.events(inRun: results[1].runID)
            #expect(b.filter { $0.type == "request.redelivered" }.count == 1, "B went to the second host")
        }
    }

    @Test func oneKeyServedByTwoHostProcessesStaysOnOneOfThem() async throws {
        try await withTemporaryDirectory { directory in
            let router = try EmbeddedRouter(
                directory: directory + "/log",
                configuration: RouterConfiguration(endpoint: "tcp://127.0.0.1:*", heartbeatInterval: 100))
            let hosts = [try agentProcess(router.endpoint, "counter"), try agentProcess(router.endpoint, "counter")]
            let endpoint = router.endpoint
            let context = router.context
            let totals = try await onThread { () throws -> [String] in
                let client = try RunClient(context: context, endpoint: endpoint)
                try #require(try client.waitForService("counter", timeout: 120_000))
                // Both hosts have registered when the router has logged two counter workers.
                while try router.router.log.events(from: 1).filter({ $0.type == "worker.joined" }).count < 2 {
                    usleep(10_000)
                }
                // Forty runs at once add to the shared instance, and forty to keys of their own.
                for _ in 0..<40 { try client.start("counter", input: Payload(text: #"{"add":1}"#), key: "shared") }
                for _ in 0..<40 { try client.start("counter", input: Payload(text: #"{"add":1}"#)) }
                var totals: [String] = []
                while totals.count < 80, let result = try client.nextResult(timeout: 30_000) {
                    totals.append(result.payload.text)
                }
                return totals
            }
            var handled: [Int] = []
            for host in hosts {
                kill(host.pid, SIGTERM)
                #expect(await host.waitForExit(timeout: 30))
                let line = host.standardOutput.split(separator: "\n").last { $0.hasPrefix("agent host stopped after ") }
                handled.append(line.flatMap { Int($0.split(separator: " ")[4]) } ?? -1)
            }
            try router.stop()
            // One instance saw every shared message, in order: each total from 1 to 40 once.
            // Two instances of the key on two hosts would each count from the log and repeat totals.
            let shared = totals.filter { $0 != #"{"total":1}"# }
            #expect(totals.count == 80)
            #expect(Set(shared).count == 39 && totals.filter { $0 == #"{"total":1}"# }.count == 41, "\(totals)")
            #expect(try router.router.log.events(inStream: "agent/counter/shared").filter { $0.type == "counter.added" }.count == 40)
            // Both hosts served (keys of their own spread over them), 80 messages in all.
            #expect(handled.allSatisfy { $0 > 0 } && handled.reduce(0, +) == 80, "\(handled)")
        }
    }

    @Test func runThenReplayAndLockShowWithTheRouterStopped() async throws {
        try await withTemporaryDirectory { directory in
            let data = directory + "/log"
            let router = try await RouterProcess.start(data: data)
            let agents = try agentProcess(router.endpoint, "echo,counter,pipeline")
            let endpoint = router.endpoint
            try await onThread {
                let client = try RunClient(context: try ZMQContext(), endpoint: endpoint)
                for name in ["pipeline", "echo", "counter"] {
                    try #require(try client.waitForService(name, timeout: 120_000))
                }
            }
            let run = try await runProduct("switchboard", ["run", "pipeline", "--input", #"{"task":"x"}"#,
                                                     "--router", router.endpoint, "--timeout", "30"])
            let lines = run.output.split(separator: "\n").map(String.init)
            let runID = try #require(lines.first?.split(separator: " ").last.map(String.init))
            // A fork that borrows the run up to the counter's answer, then asks the last echo live.
            let until = try #require(lines.first { $0.contains(" reply.final counter ") }?.split(separator: " ").first)
            let fork = try await runProduct("switchboard", ["replay", runID, "--fork", "--until", String(until),
                                                      "--router", router.endpoint, "--timeout", "30"])
            agents.kill()
            router.process.kill()
            #expect(run.status == 0, "\(run.output)\(run.error)")
            #expect(fork.status == 0, "\(fork.output)\(fork.error)")
            let forkLines = fork.output.split(separator: "\n").map(String.init)
            #expect(forkLines.first == "forked \(runID) at position \(until)")
            let forkID = try #require(forkLines.dropFirst().first?.split(separator: " ").last.map(String.init))
            #expect(forkLines.contains { $0.contains(" run.forked ") && $0.contains(runID) })
            #expect(forkLines.last == lines.last)
            let forkReplay = try await runProduct("switchboard", ["replay", forkID, "--data", data])
            #expect(forkReplay.status == 0, "\(forkReplay.output)\(forkReplay.error)")
            let noRouter = try await runProduct("switchboard", ["replay", runID, "--fork"])
            #expect(noRouter.status != 0 && noRouter.error.contains("--fork needs --router"))
            #expect(lines.first == "run \(runID)")
            #expect(lines.contains { $0.contains(" pipeline.step ") })
            #expect(lines.last == #"result: {"input":{"task":"x"},"counter":{"total":1},"steps":3}"#)

            let replay = try await runProduct("switchboard", ["replay", runID, "--data", data])
            #expect(replay.status == 0, "\(replay.output)\(replay.error)")
            #expect(replay.output.hasPrefix("identical: run \(runID)"))
            let lock = try await runProduct("switchboard", ["lock", "show", runID, "--data", data])
            #expect(lock.status == 0)
            #expect(lock.output.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) }
                    == ["pipeline", "echo", "counter"])

            let missing = try await runProduct("switchboard", ["replay", "run-none", "--data", data])
            #expect(missing.status == 1)
            #expect(missing.error.contains("no run run-none"))
        }
    }

    @Test func replayRefusesADriftedAgentVersionWithExitTwo() async throws {
        try await withTemporaryDirectory { directory in
            let data = directory + "/log"
            let router = try EmbeddedRouter(directory: data,
                                            configuration: RouterConfiguration(endpoint: "tcp://127.0.0.1:*"))
            // A counter deployed as version 0.9; the CLI replays the built-in 1.0.
            let host = try AgentHost(
                types: [AgentType(Counter.self, descriptor: AgentDescriptor(name: "counter", version: "0.9"))],
                configuration: .init(endpoint: router.endpoint), context: router.context)
            let endpoint = router.endpoint
            let run = try await withThrowingTaskGroup(of: ProcessResult?.self) { group in
                group.addTask {
                    await host.run()
                    return nil
                }
                let run = try await onThread {
                    let client = try RunClient(context: try ZMQContext(), endpoint: endpoint)
                    try #require(try client.waitForService("counter", timeout: 120_000))
                    return try runProduct("switchboard", ["run", "counter", "--input", #"{"add":5}"#, "--router", endpoint])
                }
                await host.shutdown()
                try await group.waitForAll()
                return run
            }
            #expect(run.status == 0, "\(run.output)\(run.error)")
            let runID = try #require(run.output.split(separator: "\n").first?.split(separator: " ").last.map(String.init))

            let refused = try await runProduct("switchboard", ["replay", runID, "--data", data])
            #expect(refused.status == 2, "\(refused.output)")
            #expect(refused.output.contains("DRIFT counter: recorded version 0.9"))
            let allowed = try await runProduct("switchboard", ["replay", runID, "--data", data, "--allow-drift"])
            #expect(allowed.status == 0, "\(allowed.output)")
            #expect(allowed.output.contains("identical: run \(runID)"))
            try router.stop()
        }
    }
}

@Suite(.serialized) struct AgentHostReconnectTests {
    @Test func agentHostReconnectsAfterARouterRestartAndServesAgain() async throws {
        try await withTemporaryDirectory { directory in
            let data = directory + "/log"
            var router = try await RouterProcess.start(data: data, heartbeat: 100)
            let endpoint = router.endpoint
            let host = try AgentHost(types: BuiltinAgents.all,
                                     configuration: .init(endpoint: endpoint, heartbeatInterval: 100))
            func pipelineRun() async throws -> RunClient.Result? {
                try await onThread {
                    let client = try RunClient(context: try ZMQContext(), endpoint: endpoint)
                    for name in ["pipeline", "echo", "counter"] {
                        try #require(try client.waitForService(name, timeout: 120_000))
                    }
                    try client.start("pipeline", input: Payload(text: #"{"n":1}"#))
                    return try client.nextResult(timeout: 60_000)
                }
            }
            let (before, after) = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await host.run() }
                let before = try await pipelineRun()
                router.process.kill()
                router = try await RouterProcess.start(data: data, bind: endpoint, heartbeat: 100)
                let after = try await pipelineRun()
                await host.shutdown()
                try await group.waitForAll()
                return (before, after)
            }
            router.process.kill()
            #expect(before?.error == nil && before?.payload.text.contains(#""steps":3"#) == true)
            #expect(after?.error == nil && after?.payload.text.contains(#""steps":3"#) == true)
            #expect(host.registrations >= 6, "three agent types registered twice")
        }
    }
}
