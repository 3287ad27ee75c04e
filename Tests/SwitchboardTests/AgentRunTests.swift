// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import TestSupport
@testable import Switchboard
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire

@Suite struct AgentRunTests {
    @Test func pipelineRunsThroughThreeAgentsAndReplaysIdentical() async throws {
        try await withTemporaryDirectory { directory in
            let embedded = try Embedded(directory: directory)
            let results = try await embedded.serving { embedded in
                try await embedded.runs("pipeline", inputs: [Payload(text: #"{"task":"sum"}"#)])
            }
            let result = try #require(results.first)
            #expect(result.error == nil)
            #expect(result.payload.text == #"{"input":{"task":"sum"},"counter":{"total":1},"steps":3}"#)
            let log = embedded.router.router.log
            try embedded.router.stop()

            let events = try log.events(inRun: result.runID)
            #expect(events.filter { $0.type == "pipeline.step" }.count == 3)
            #expect(events.filter { $0.type == "counter.added" }.count == 1)
            let lock = try Replayer.lock(of: result.runID, in: log)
            #expect(Set(lock.map(\.service)) == ["pipeline", "echo", "counter"])

            let report = try await Replayer.replay(run: result.runID, log: log, types: BuiltinAgents.all)
            #expect(report.divergence == nil)
            #expect(report.drift.isEmpty)
            #expect(report.messagesReplayed == 4)
            #expect(report.unfinishedMessages == 0)
            #expect(report.exitCode == 0)
            // The router's reply to the run's first message ended it.
            #expect(try log.runStatus(result.runID)?.state == .completed)
        }
    }

    /// An agent run has no lifecycle events of its own: the status follows its first message's reply.
    @Test func aRunWhoseAgentFailsIsFailedAndOneThatAnswersIsCompleted() async throws {
        try await withTemporaryDirectory { directory in
            let embedded = try Embedded(directory: directory, types: [AgentType(Failing.self)] + BuiltinAgents.all)
            let results = try await embedded.serving { embedded in
                try await embedded.runs("failing", inputs: [Payload(text: "{}")])
                    + embedded.runs("echo", inputs: [Payload(text: "{}")])
            }
            try embedded.router.stop()
            let log = embedded.router.router.log
            #expect(results.count == 2 && results[0].error != nil && results[1].error == nil)
            #expect(try log.runStatus(results[0].runID)?.state == .failed)
            #expect(try log.runStatus(results[1].runID)?.state == .completed)
        }
    }
}

/// Fails every message.
actor Failing: Agent {
    static let descriptor = AgentDescriptor(name: "failing", version: "1")
    var state = NoState()

    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Failing>) async throws -> Payload {
        throw TestFailure("this agent always fails")
    }
}

@Suite struct AgentHostTests {
    @Test func thousandConcurrentRunsThroughOneHostCompleteAndReplayIdentical() async throws {
        try await withTemporaryDirectory { directory in
            let embedded = try Embedded(directory: directory)
            let inputs = (0..<1000).map { Payload(text: "{\"n\":\($0)}") }
            let results = try await embedded.serving { embedded in
                try await embedded.runs("pipeline", inputs: inputs)
            }
            #expect(results.count == 1000)
            #expect(results.allSatisfy { $0.error == nil })
            #expect(Set(results.map(\.payload.text)).count == 1000)
            #expect(results.allSatisfy { $0.payload.text.contains(#""counter":{"total":1}"#) })
            try embedded.router.stop()
            let log = embedded.router.router.log
            for result in results {
                let report = try await Replayer.replay(run: result.runID, log: log, types: BuiltinAgents.all)
                #expect(report.exitCode == 0, "\(result.runID): \(String(describing: report.divergence))")
                #expect(report.messagesReplayed == 4)
            }
        }
    }

    @Test func newHostRebuildsStateFromSnapshotAndLaterEvents() async throws {
        try await withTemporaryDirectory { directory in
            let counter = AgentType(Counter.self, descriptor: AgentDescriptor(name: "counter", version: "1.0",
                                                                               snapshotInterval: 2))
            let router = try EmbeddedRouter(
                directory: directory,
                configuration: .init(endpoint: "inproc://rebuild-\(UInt64.random(in: 0...UInt64.max))"),
                durability: .none)
            func host() throws -> Embedded {
                Embedded(router: router, host: try AgentHost(types: [counter],
                                                             configuration: .init(endpoint: router.endpoint),
                                                             context: router.context))
            }
            // Five runs add to one shared instance on the first host.
            let first = try await host().serving { embedded in
                var totals: [String] = []
                for _ in 0..<5 {
                    totals += try await embedded.runs("counter", inputs: [Payload(text: #"{"add":10}"#)], key: "shared")
                        .map(\.payload.text)
                }
                return totals
            }
            #expect(first == (1...5).map { "{\"total\":\($0 * 10)}" })
            // A second host knows nothing: it folds the last snapshot and the events after it.
            let second = try await host().serving { embedded in
                try await embedded.runs("counter", inputs: [Payload(text: #"{"add":1}"#)], key: "shared")
            }
            #expect(second.first?.payload.text == #"{"total":51}"#)
            try router.stop()
            let snapshots = try router.router.log.events(inStream: "agent/counter/shared/snapshot")
            #expect(snapshots.count == 3)
            #expect(snapshots.last.map { String(decoding: $0.payload, as: UTF8.self) }
                    == #"{"version":6,"state":{"total":51}}"#)
        }
    }
}
