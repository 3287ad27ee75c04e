// SPDX-License-Identifier: Apache-2.0
import Testing
import TestSupport
@testable import Switchboard
import SwitchboardLog

/// Asks the counter and the adder at once.
actor Fanout: Agent {
    static let descriptor = AgentDescriptor(name: "fanout", version: "1.0")
    var state = NoState()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Fanout>) async throws -> Payload {
        let replies = try await context.askAll([("counter", try Payload(json: ["add": 2])),
                                                ("adder", try Payload(json: ["add": 5]))])
        return Payload(text: "[\(replies[0].text),\(replies[1].text)]")
    }
}

/// A second stateful service: emits what it adds, like the counter, under a name of its own.
actor Adder: Agent {
    static let descriptor = AgentDescriptor(name: "adder", version: "1.0")
    var state = Counter.State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Adder>) async throws -> Payload {
        let add = (try? message.payload.decode([String: Int].self))?["add"] ?? 1
        try context.emit(Counter.Added(amount: add))
        return try Payload(json: ["total": state.total])
    }
}

@Suite struct CutShortReplayTests {
    static let types = BuiltinAgents.all + [AgentType(Fanout.self), AgentType(Adder.self)]

    /// A copy of run `runID` without the events `dropped` picks: the log a crash leaves.
    func copy(of runID: String, from log: EventLog, to directory: String,
              dropping dropped: (RecordedEvent) -> Bool) throws -> (EventLog, kept: Int) {
        let copy = try EventLog.open(at: directory)
        let kept = try log.events(inRun: runID).filter { !dropped($0) }.map { event in
            NewEvent(type: event.type, schemaVersion: event.schemaVersion, runID: event.runID,
                     streamID: event.streamID, messageID: event.messageID, causationID: event.causationID,
                     timestamp: event.timestamp, payload: event.payload, payloadEncoding: event.payloadEncoding)
        }
        try copy.append(kept)
        return (copy, kept.count)
    }

    /// The fan-out's first ask in the log found no worker (no lock entry, no reply), its second
    /// was handled, then the router stopped: replay takes every message the log holds, and the
    /// unanswered ones count as unfinished, not as divergent, though their handlers emit events
    /// that never reached the log.
    @Test func aMessageNeverDispatchedDoesNotHideTheMessagesAfterIt() async throws {
        try await withTemporaryDirectory { directory in
            let embedded = try Embedded(directory: directory + "/live", types: Self.types)
            let results = try await embedded.serving { embedded in
                try await embedded.runs("fanout", inputs: [Payload(text: "{}")])
            }
            let result = try #require(results.first)
            #expect(result.payload.text == #"[{"total":2},{"total":5}]"#)
            try embedded.router.stop()
            let log = embedded.router.router.log

            let start = "\(result.runID)/start"
            let asks = try log.events(inRun: result.runID).filter { $0.type == "request.received" && $0.causationID == start }
            #expect(asks.count == 2)
            let first = try #require(asks.first).messageID
            let (cut, kept) = try copy(of: result.runID, from: log, to: directory + "/cut") { event in
                guard event.type != "request.received" else { return false }
                // The first ask's lock entry, reply and events; the fan-out's reply.
                return event.causationID == first || event.causationID == start && event.type == "reply.final"
            }
            let events = try cut.events(inRun: result.runID)
            #expect(!events.contains { $0.type == "lock.recorded" && $0.causationID == first })
            #expect(events.filter { $0.type == "counter.added" }.count == 1)

            for _ in 0..<3 {
                let report = try await Replayer.replay(run: result.runID, log: cut, types: Self.types)
                #expect(report.divergence == nil, "\(String(describing: report.divergence))")
                #expect(report.exitCode == 0)
                #expect(report.eventsRead == kept)
                // The fan-out, the ask never answered, and the ask handled after it.
                #expect(report.messagesReplayed == 3)
                #expect(report.unfinishedMessages == 2)
            }
        }
    }
}
