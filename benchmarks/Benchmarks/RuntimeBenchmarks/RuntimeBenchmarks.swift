// SPDX-License-Identifier: Apache-2.0
import Benchmark
import Foundation
import ReplayFixture
import Switchboard
import SwitchboardLog
import Synchronization

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
            let report = try await Replayer.replay(run: recorded.runID, log: recorded.log, types: replayTypes)
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
