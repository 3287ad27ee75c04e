// SPDX-License-Identifier: Apache-2.0
import Benchmark
import Foundation
import Switchboard
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire
import Synchronization

/// Asks echo `steps` times and emits an event after each: three logged events per step.
actor Looper: Agent {
    static let descriptor = AgentDescriptor(name: "looper", version: "1.0", snapshotInterval: 1_000_000)

    struct Step: AgentEvent {
        var step: Int
        var eventType: String { "looper.step" }
    }

    struct State: AgentState {
        var steps = 0
        init() {}
        mutating func apply(_ event: Step) { steps = event.step }
    }

    var state = State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Looper>) async throws -> Payload {
        let steps = Int(message.payload.text) ?? 0
        for step in 1...steps {
            _ = try await context.ask("echo", Payload(text: "{\"step\":\(step)}"))
            try context.emit(Step(step: step))
        }
        return Payload(text: "{\"steps\":\(state.steps)}")
    }
}

let types = [AgentType(Echo.self), AgentType(Looper.self)]

/// Records one run of about 100,000 events (33,333 asks) in a scratch log, through a real router
/// and agent host in this process; returns the log and the run id.
func recordRun(in directory: String) async throws -> (EventLog, String) {
    let router = try EmbeddedRouter(
        directory: directory, configuration: RouterConfiguration(endpoint: "inproc://bench-\(UUID().uuidString)"),
        durability: .none)
    let host = try AgentHost(types: types, configuration: .init(endpoint: router.endpoint), context: router.context)
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

/// The recorded run every iteration replays.
struct Recorded: Sendable {
    let log: EventLog
    let runID: String
}

/// The scratch log's directory, for teardown, which is not handed what setup returned.
let scratchDirectory = Mutex<String?>(nil)

let benchmarks: @Sendable () -> Void = {
    // The run is recorded once, in setup; each iteration replays it whole and reports events per second.
    Benchmark(
        "Runtime.replay.100kEvents",
        configuration: .init(metrics: [.wallClock, .custom("events/s", polarity: .prefersLarger,
                                                            useScalingFactor: false)],
                             maxDuration: .seconds(30), maxIterations: 10)
    ) { (benchmark: Benchmark, recorded: Recorded) in
        var events = 0
        for _ in benchmark.scaledIterations {
            let started = DispatchTime.now().uptimeNanoseconds
            benchmark.startMeasurement()
            let report = try await Replayer.replay(run: recorded.runID, log: recorded.log, types: types)
            benchmark.stopMeasurement()
            let elapsed = DispatchTime.now().uptimeNanoseconds - started
            guard report.exitCode == 0, report.divergence == nil else {
                fatalError("the benchmark run did not replay identical: \(String(describing: report.divergence))")
            }
            events = report.eventsRead
            benchmark.measurement(.custom("events/s", polarity: .prefersLarger, useScalingFactor: false),
                                  Int(Double(events) / (Double(elapsed) / 1e9)))
        }
        blackHole(events)
    } setup: {
        let directory = NSTemporaryDirectory() + "/switchboard-bench-replay-\(UUID().uuidString)"
        scratchDirectory.withLock { $0 = directory }
        let (log, runID) = try await recordRun(in: directory)
        return Recorded(log: log, runID: runID)
    } teardown: {
        if let directory = scratchDirectory.withLock({ $0.take() }) {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
