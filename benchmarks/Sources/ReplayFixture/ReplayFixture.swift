// SPDX-License-Identifier: Apache-2.0
// The run the replay benchmarks replay, shared by `RuntimeBenchmarks` and `ReplayRounds`.
import Foundation
public import Switchboard
public import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire

/// Asks echo `steps` times and emits an event after each: three logged events per step.
public actor Looper: Agent {
    public static let descriptor = AgentDescriptor(name: "looper", version: "1.0", snapshotInterval: 1_000_000)

    public struct Step: AgentEvent {
        public var step: Int
        public var eventType: String { "looper.step" }
    }

    public struct State: AgentState {
        public var steps = 0
        public init() {}
        public mutating func apply(_ event: Step) { steps = event.step }
    }

    public var state = State()
    public init(id: AgentID) {}

    public func handle(_ message: AgentMessage, context: AgentContext<Looper>) async throws -> Payload {
        let steps = Int(message.payload.text) ?? 0
        for step in 1...steps {
            _ = try await context.ask("echo", Payload(text: "{\"step\":\(step)}"))
            try context.emit(Step(step: step))
        }
        return Payload(text: "{\"steps\":\(state.steps)}")
    }
}

/// The agent types of the recorded run.
public let replayTypes = [AgentType(Echo.self), AgentType(Looper.self)]

/// Records one run of about 100,000 events (33,333 asks) in a scratch log, through a real router
/// and agent host in this process; returns the log and the run id.
public func recordRun(in directory: String) async throws -> (EventLog, String) {
    let router = try EmbeddedRouter(
        directory: directory, configuration: RouterConfiguration(endpoint: "inproc://bench-\(UUID().uuidString)"),
        durability: .none)
    let host = try AgentHost(types: replayTypes, configuration: .init(endpoint: router.endpoint), context: router.context)
    let runID = try await withThrowingTaskGroup(of: String?.self) { group in
        group.addTask {
            await host.run()
            return nil
        }
        let context = router.context
        let endpoint = router.endpoint
        let runID: String = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result {
                    let client = try RunClient(context: context, endpoint: endpoint)
                    _ = try client.waitForService("looper", timeout: 60_000)
                    _ = try client.waitForService("echo", timeout: 60_000)
                    let runID = try client.start("looper", input: Payload(text: "33333"))
                    guard let result = try client.nextResult(timeout: 600_000), result.error == nil else {
                        throw WireError(.timeout, "the recorded run failed")
                    }
                    return runID
                })
            }
        }
        await host.shutdown()
        try await group.waitForAll()
        return runID
    }
    try router.stop()
    return (router.router.log, runID)
}

