// SPDX-License-Identifier: Apache-2.0
import Benchmark
import Foundation
import SwitchboardLog

/// Every append benchmark writes 1,000 events of 256 payload bytes per iteration (scaling factor
/// kilo), so throughput reads as events per second whatever the batch size.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        scalingFactor: .kilo,
        maxDuration: .seconds(5),
        maxIterations: 50
    )

    for durability in [Durability.fsync, .buffered] {
        for batch in [1, 100, 1000] {
            Benchmark("EventLog.append.batch\(batch).256B.\(durability)") { benchmark throws in
                try withScratchLog(durability) { log in
                    let events = [NewEvent](repeating: template, count: batch)
                    benchmark.startMeasurement()
                    var written = 0
                    while written < benchmark.scaledIterations.count {
                        try log.append(events)
                        written += batch
                    }
                    benchmark.stopMeasurement()
                }
            }
        }
    }

    // A full scan with checksum verification and decoding, 1,000 events per scaled iteration.
    Benchmark("EventLog.scan.100k.256B", configuration: .init(scalingFactor: .kilo)) { benchmark throws in
        try withScratchLog(.none) { log in
            for _ in 0..<100 { try log.append([NewEvent](repeating: template, count: 1000)) }
            benchmark.startMeasurement()
            var seen = 0
            try log.forEachEvent { event in
                seen += 1
                blackHole(event.payload.count)
                return seen < benchmark.scaledIterations.count
            }
            benchmark.stopMeasurement()
        }
    }

    // The same walk through zero-copy views: checksums verified, nothing decoded or copied.
    Benchmark("EventLog.scanView.100k.256B", configuration: .init(scalingFactor: .kilo)) { benchmark throws in
        try withScratchLog(.none) { log in
            for _ in 0..<100 { try log.append([NewEvent](repeating: template, count: 1000)) }
            benchmark.startMeasurement()
            var seen = 0
            try log.scan { view in
                seen += 1
                blackHole(view.payloadCount)
                return seen < benchmark.scaledIterations.count
            }
            benchmark.stopMeasurement()
        }
    }

    Benchmark("EventLog.runStatus.lookup", configuration: .init(scalingFactor: .kilo)) { benchmark throws in
        try withScratchLog(.none) { log in
            for run in 0..<100 {
                try log.append([NewEvent](repeating: template, count: 100).map { event in
                    var event = event
                    event.runID = "run-\(run)"
                    return event
                })
            }
            benchmark.startMeasurement()
            for index in benchmark.scaledIterations {
                blackHole(try log.runStatus("run-\(index % 100)"))
            }
            benchmark.stopMeasurement()
        }
    }
}

let template = NewEvent(
    type: "bench.appended", runID: "bench", streamID: "bench",
    payload: [UInt8](repeating: UInt8(ascii: "e"), count: 256), payloadEncoding: .binary)

/// Opens a log in a fresh temporary directory and removes it afterwards.
func withScratchLog(_ durability: Durability, _ body: (EventLog) throws -> Void) throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("switchboard-bench-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let log = try EventLog.open(at: directory, configuration: .init(durability: durability))
    try body(log)
}
