// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import Switchboard
@testable import SwitchboardLog
import TestSupport

/// Logs keep the on-disk format they were created with: a format 1 log, written by an earlier
/// build (Tests/Fixtures/log-format-1), is read, verified, replayed and appended to in its own
/// layout; a new log is format 2.
@Suite struct LogFormatTests {
    static let runs: [(id: String, positions: ClosedRange<UInt64>)] = [
        ("run-488e200ea7423725", 5...19), ("run-4891232ad6821659", 20...34), ("run-48937e75d33dae0c", 35...49),
    ]

    /// Copies the fixture into `dir`: opening a log for writing changes its files.
    static func copyFixture(to dir: String) throws {
        let source = repositoryRoot.appendingPathComponent("Tests/Fixtures/log-format-1/data.mdb")
        try FileManager.default.copyItem(at: source, to: URL(fileURLWithPath: dir).appendingPathComponent("data.mdb"))
    }

    @Test func aFormatOneLogReadsVerifiesAndReplays() async throws {
        try await withTemporaryDirectory { dir in
            try Self.copyFixture(to: dir)
            let log = try EventLog.openReadOnly(at: dir)
            #expect(log.format == 1)
            for run in Self.runs {
                let events = try log.events(inRun: run.id)
                #expect(events.map(\.position) == Array(run.positions))
                #expect(events.allSatisfy { $0.runID == run.id })
                #expect(try log.events(inRun: run.id, from: run.positions.lowerBound + 10).count == 5)
                let report = try await Replayer.replay(run: run.id, log: log, types: BuiltinAgents.all)
                #expect(report.divergence == nil && report.drift.isEmpty && report.exitCode == 0)
                #expect(report.eventsRead == 15 && report.messagesReplayed == 4)
            }
            let verification = try log.verify()
            #expect(verification.isSound && verification.eventsChecked == 52)
            #expect(try log.statistics().indexEntries == 57)
        }
    }

    @Test func aFormatOneLogTakesAppendsInItsOwnLayout() throws {
        try withTemporaryDirectory { dir in
            try Self.copyFixture(to: dir)
            do {
                let log = try EventLog.open(at: dir)
                #expect(log.format == 1)
                let old = Self.runs[0].id
                try log.append([
                    NewEvent(type: "note", runID: old, payload: Array("{}".utf8)),
                    NewEvent(type: "note", runID: "run-new", streamID: "s", payload: Array("{}".utf8)),
                    NewEvent(type: "note", runID: old, payload: Array("{}".utf8)),
                ])
                #expect(try log.events(inRun: old).map(\.position) == Array(Self.runs[0].positions) + [53, 55])
                #expect(try log.events(inRun: "run-new").map(\.position) == [54])
                #expect(try log.verify().isSound)
                #expect(try log.statistics().indexEntries == 57 + 4)
            }
            let reopened = try EventLog.openReadOnly(at: dir)
            #expect(reopened.format == 1)
            #expect(try reopened.events(inRun: "run-new").map(\.position) == [54])
        }
    }

    @Test func aNewLogIsFormatTwoAndStaysSo() throws {
        try withTemporaryDirectory { dir in
            do {
                let log = try EventLog.open(at: dir)
                #expect(log.format == EventLog.formatVersion && log.format == 2)
                try log.append((0..<6).map { NewEvent(type: "e", runID: "run-\($0 % 2)", payload: Array("{}".utf8)) })
            }
            let reader = try EventLog.openReadOnly(at: dir)
            #expect(reader.format == 2)
            #expect(try reader.events(inRun: "run-1").map(\.position) == [2, 4, 6])
            #expect(try reader.statistics().indexEntries == 6)
            #expect(try reader.verify().isSound)
        }
    }
}
