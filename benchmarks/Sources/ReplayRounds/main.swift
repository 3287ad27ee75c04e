// SPDX-License-Identifier: Apache-2.0
// Replays the benchmark's recorded run several times in one process and prints the p50 wall time
// and CPU per replay: two builds run in turn (scripts/bench-replay-ab.sh) compare code on a
// machine whose speed moves from minute to minute. The run is recorded once into the fixture.
import Foundation
import ReplayFixture
import Switchboard
import SwitchboardLog

let usage = "usage: ReplayRounds [ROUNDS] (default 10); the fixture is $REPLAY_FIXTURE or /tmp/switchboard-replay-fixture"
let arguments = CommandLine.arguments.dropFirst()
guard arguments.count <= 1, let rounds = Int(arguments.first ?? "10"), rounds > 0 else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(2)
}
let fixture = ProcessInfo.processInfo.environment["REPLAY_FIXTURE"] ?? "/tmp/switchboard-replay-fixture"
if !FileManager.default.fileExists(atPath: fixture + "/run-id") {
    // Recorded by a process of its own: replays open the log read-only, as `switchboard replay` does.
    try? FileManager.default.removeItem(atPath: fixture)
    try FileManager.default.createDirectory(atPath: fixture, withIntermediateDirectories: true)
    let (_, runID) = try await recordRun(in: fixture + "/log")
    try runID.write(toFile: fixture + "/run-id", atomically: true, encoding: .utf8)
    print("recorded \(runID) in \(fixture); run again to replay it")
    exit(0)
}

/// The process's user and system CPU time so far, in nanoseconds.
func cpuNanoseconds() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let seconds = UInt64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
    return seconds * 1_000_000_000 + UInt64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1_000
}

let runID = try String(contentsOfFile: fixture + "/run-id", encoding: .utf8)
let log = try EventLog.openReadOnly(at: fixture + "/log")
var walls: [Double] = []
var cpus: [Double] = []
var events = 0
for _ in 0..<rounds {
    let cpuBefore = cpuNanoseconds()
    let started = DispatchTime.now().uptimeNanoseconds
    let report = try await Replayer.replay(run: runID, log: log, types: replayTypes)
    let elapsed = DispatchTime.now().uptimeNanoseconds - started
    guard report.exitCode == 0 else {
        FileHandle.standardError.write(Data("not identical: \(String(describing: report.divergence))\n".utf8))
        exit(1)
    }
    events = report.eventsRead
    walls.append(Double(elapsed) / 1e6)
    cpus.append(Double(cpuNanoseconds() - cpuBefore) / 1e6)
}
walls.sort()
cpus.sort()
print(String(format: "wall p50 %.1f ms (min %.1f max %.1f), cpu p50 %.1f ms, %d replays of %d events",
             walls[walls.count / 2], walls[0], walls[walls.count - 1], cpus[cpus.count / 2], rounds, events))
