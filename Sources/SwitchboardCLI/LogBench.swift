// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import SwitchboardLog

struct LogBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure append and scan speed on this disk.",
        discussion: """
            Appends N events of SIZE payload bytes, BATCH per transaction, into an empty directory,
            then scans them all (checksums verified, nothing copied). Prints the same figures as the raw LMDB
            yardstick lmdb_append so scripts/bench-log.sh can compare them.
            """)
    @OptionGroup var options: DataOption
    @Option(name: .customShort("n"), help: "Events to append.") var count: Int = 100_000
    @Option(help: "Payload bytes per event.") var size: Int = 256
    @Option(help: "Events per write transaction.") var batch: Int = 1000
    @Option(help: "fsync, buffered or none.") var durability: String = "fsync"

    func run() throws {
        guard let durability = Durability(rawValue: durability) else {
            throw ValidationError("--durability must be fsync, buffered or none")
        }
        guard count > 0, batch > 0, size >= 0 else { throw ValidationError("-n and --batch must be positive and --size not negative") }
        let log = try reportingErrors {
            try EventLog.open(at: options.data, configuration: .init(durability: durability))
        }
        guard try log.tail() == 0 else { throw ValidationError("\(options.data) must hold an empty log") }
        let payload = [UInt8](repeating: UInt8(ascii: "e"), count: size)
        let template = NewEvent(type: "bench.appended", runID: "bench", streamID: "bench", payload: payload,
                                payloadEncoding: .binary)
        let clock = ContinuousClock()
        var written = 0
        var commits = 0
        // Built once, like the raw yardstick's value buffer: the loop measures the log alone.
        let full = [NewEvent](repeating: template, count: batch)
        let rest = [NewEvent](repeating: template, count: count % batch)
        let appendTime = try clock.measure {
            while written < count {
                let events = count - written >= batch ? full : rest
                try log.append(events)
                written += events.count
                commits += 1
            }
        }
        let appendSeconds = appendTime.seconds
        print(String(format: "append n=%d size=%d batch=%d durability=%@ events/s=%.0f commits/s=%.0f",
                     count, size, batch, durability.rawValue, Double(count) / appendSeconds,
                     Double(commits) / appendSeconds))
        var scanned = 0
        var bytes = 0
        let scanTime = try clock.measure {
            try log.scan { event in
                scanned += 1
                bytes += event.payloadCount
                return true
            }
        }
        print(String(format: "scan n=%d events/s=%.0f MB/s=%.0f", scanned, Double(scanned) / scanTime.seconds,
                     Double(bytes) / scanTime.seconds / 1e6))
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
