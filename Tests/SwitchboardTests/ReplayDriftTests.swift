// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import TestSupport
@testable import Switchboard
import SwitchboardLog

/// Asks echo with the input, then counter: the agent whose recorded runs the variants below replay.
actor Asker: Agent {
    static let descriptor = AgentDescriptor(name: "asker", version: "1.0")
    var state = Counter.State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Asker>) async throws -> Payload {
        let echoed = try await context.ask("echo", message.payload)
        let counted = try await context.ask("counter", try Payload(json: ["add": 2]))
        try context.emit(Counter.Added(amount: 2))
        return Payload(text: "[\(echoed.text),\(counted.text)]")
    }
}

/// Drift: the same asks with a different argument.
actor AskerWithOtherArgument: Agent {
    var state = Counter.State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<AskerWithOtherArgument>) async throws -> Payload {
        let echoed = try await context.ask("echo", message.payload)
        let counted = try await context.ask("counter", try Payload(json: ["add": 3]))
        try context.emit(Counter.Added(amount: 2))
        return Payload(text: "[\(echoed.text),\(counted.text)]")
    }

    static let descriptor = Asker.descriptor
}

/// Drift: the same asks in the other order.
actor AskerReordered: Agent {
    static let descriptor = Asker.descriptor
    var state = Counter.State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<AskerReordered>) async throws -> Payload {
        let counted = try await context.ask("counter", try Payload(json: ["add": 2]))
        let echoed = try await context.ask("echo", message.payload)
        try context.emit(Counter.Added(amount: 2))
        return Payload(text: "[\(echoed.text),\(counted.text)]")
    }
}

/// Drift: emits a different event.
actor AskerEmittingOther: Agent {
    static let descriptor = Asker.descriptor
    var state = Counter.State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<AskerEmittingOther>) async throws -> Payload {
        let echoed = try await context.ask("echo", message.payload)
        let counted = try await context.ask("counter", try Payload(json: ["add": 2]))
        try context.emit(Counter.Added(amount: 7))
        return Payload(text: "[\(echoed.text),\(counted.text)]")
    }
}

/// Emits before each ask, so replay compares those events while the handler still runs. The
/// variants change what it emits and asks first; all register as the same agent.
actor EarlyEmitter: AgentActor {
    static let descriptor = AgentDescriptor(name: "early", version: "1.0")
    var state = Counter.State()
    let firstEvents: [Int]
    let firstAsk: Payload?

    init(firstEvents: [Int], firstAsk: Payload?) {
        self.firstEvents = firstEvents
        self.firstAsk = firstAsk
    }

    /// Records with `[1]` and the message's payload.
    static func type(firstEvents: [Int] = [1], firstAsk: Payload? = nil) -> AgentType {
        AgentType(descriptor: descriptor) { _ in EarlyEmitter(firstEvents: firstEvents, firstAsk: firstAsk) }
    }

    func handle(_ message: AgentMessage, context: AgentContext<EarlyEmitter>) async throws -> Payload {
        for amount in firstEvents { try context.emit(Counter.Added(amount: amount)) }
        let echoed = try await context.ask("echo", firstAsk ?? message.payload)
        try context.emit(Counter.Added(amount: 2))
        _ = try await context.ask("counter", try Payload(json: ["add": 2]))
        return echoed
    }
}

/// Drift: counts ten times what it is asked to add.
actor CounterTimesTen: Agent {
    static let descriptor = Counter.descriptor
    var state = Counter.State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<CounterTimesTen>) async throws -> Payload {
        let add = (try? message.payload.decode([String: Int].self))?["add"] ?? 1
        try context.emit(Counter.Added(amount: add * 10))
        return try Payload(json: ["total": state.total])
    }
}

/// A deliberately bad agent: it reads the system clock instead of `context.now`.
actor ClockReader: Agent {
    static let descriptor = AgentDescriptor(name: "clock", version: "1.0")
    var state = NoState()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<ClockReader>) async throws -> Payload {
        let stamp = Date().timeIntervalSince1970
        return try await context.ask("echo", Payload(text: "{\"at\":\(stamp)}"))
    }
}

/// The well-behaved twin: the logged clock and the logged seed.
actor ContextClockReader: Agent {
    static let descriptor = AgentDescriptor(name: "clock", version: "1.0")
    var state = NoState()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<ContextClockReader>) async throws -> Payload {
        let draw = context.random(in: 0...1_000_000)
        return try await context.ask("echo", Payload(text: "{\"at\":\(context.now.nanosecondsSinceEpoch),\"draw\":\(draw)}"))
    }
}

/// Emits events named like the router's bookkeeping: they are its own, in its stream.
actor Impostor: Agent {
    static let descriptor = AgentDescriptor(name: "impostor", version: "1.0")
    struct Named: AgentEvent {
        var name: String
        var eventType: String { name }
    }
    struct State: AgentState {
        var seen: [String] = []
        mutating func apply(_ event: Named) { seen.append(event.name) }
    }
    var state = State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Impostor>) async throws -> Payload {
        for name in ["request.received", "reply.final", "request.failed", "lock.recorded"] {
            try context.emit(Named(name: name))
        }
        _ = try await context.ask("echo", Payload(text: "{}"))
        try context.emit(Named(name: "reply.partial"))
        return try Payload(json: ["seen": state.seen.count])
    }
}

@Suite struct ReplayDriftTests {
    static let live = BuiltinAgents.all + [AgentType(Asker.self)]

    /// Runs `asker` once and hands the log and the run id to `check`.
    func recordedRun(types: [AgentType] = live, service: String = "asker",
                     _ check: @escaping @Sendable (EventLog, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let embedded = try Embedded(directory: directory, types: types)
            let results = try await embedded.serving { embedded in
                try await embedded.runs(service, inputs: [Payload(text: #"{"q":1}"#)])
            }
            let result = try #require(results.first)
            #expect(result.error == nil, "\(String(describing: result.error))")
            try embedded.router.stop()
            try await check(embedded.router.router.log, result.runID)
        }
    }

    func askPosition(_ log: EventLog, _ runID: String, ask number: Int) throws -> UInt64 {
        try #require(log.events(inRun: runID).first {
            $0.type == "request.received" && $0.messageID == "\(runID)/start>\(number)"
        }).position
    }

    @Test func eventsNamedLikeTheRoutersReplayAsTheAgentsOwn() async throws {
        let types = Self.live + [AgentType(Impostor.self)]
        try await recordedRun(types: types, service: "impostor") { log, runID in
            let report = try await Replayer.replay(run: runID, log: log, types: types)
            #expect(report.divergence == nil, "\(String(describing: report.divergence))")
            #expect(report.exitCode == 0)
            #expect(report.messagesReplayed == 2)
        }
    }

    @Test func unchangedAgentReplaysIdentical() async throws {
        try await recordedRun { log, runID in
            let report = try await Replayer.replay(run: runID, log: log, types: Self.live)
            #expect(report.divergence == nil)
            #expect(report.exitCode == 0)
            #expect(report.messagesReplayed == 3)
        }
    }

    @Test func changedAskArgumentIsCaughtAtThatAsk() async throws {
        try await recordedRun { log, runID in
            let types = BuiltinAgents.all + [AgentType(AskerWithOtherArgument.self)]
            let report = try await Replayer.replay(run: runID, log: log, types: types)
            let divergence = try #require(report.divergence)
            #expect(divergence.position == (try askPosition(log, runID, ask: 2)))
            #expect(divergence.expected.contains(#"{"add":2}"#))
            #expect(divergence.actual.contains(#"{"add":3}"#))
            #expect(report.exitCode == 1)
        }
    }

    @Test func reorderedAsksAreCaughtAtTheFirstAsk() async throws {
        try await recordedRun { log, runID in
            let types = BuiltinAgents.all + [AgentType(AskerReordered.self)]
            let report = try await Replayer.replay(run: runID, log: log, types: types)
            let divergence = try #require(report.divergence)
            #expect(divergence.position == (try askPosition(log, runID, ask: 1)))
            #expect(divergence.expected.contains("ask #1 to echo"))
            #expect(divergence.actual.contains("ask #1 to counter"))
        }
    }

    @Test func changedEmittedEventIsCaughtAtThatEvent() async throws {
        try await recordedRun { log, runID in
            let types = BuiltinAgents.all + [AgentType(AskerEmittingOther.self)]
            let report = try await Replayer.replay(run: runID, log: log, types: types)
            let divergence = try #require(report.divergence)
            let event = try #require(log.events(inRun: runID).first {
                $0.type == "counter.added" && $0.causationID == "\(runID)/start"
            })
            #expect(divergence.position == event.position)
            #expect(divergence.actual.contains(#"{"amount":7}"#))
        }
    }

    @Test func theDivergenceAtTheLowestPositionIsReportedWhateverRanFirst() async throws {
        try await recordedRun { log, runID in
            // The asker's changed event is logged after the counter's changed event, though the
            // asker's message comes first: instances replay side by side, and the lower position wins.
            let events = try log.events(inRun: runID).filter { $0.type == "counter.added" }
            let counted = try #require(events.first { $0.streamID.hasPrefix("agent/counter/") })
            let asked = try #require(events.first { $0.streamID.hasPrefix("agent/asker/") })
            #expect(counted.position < asked.position)
            let types = [AgentType(Echo.self), AgentType(CounterTimesTen.self), AgentType(AskerEmittingOther.self)]
            for _ in 0..<5 {
                let report = try await Replayer.replay(run: runID, log: log, types: types)
                let divergence = try #require(report.divergence)
                #expect(divergence.position == counted.position)
                #expect(divergence.agent.hasPrefix("counter/"))
                #expect(divergence.actual.contains(#"{"amount":20}"#))
                // The messages up to the counter's: the asker's, echo's and the counter's own.
                #expect(report.messagesReplayed == 3)
                #expect(report.exitCode == 1)
            }
        }
    }

    @Test func eventEmittedBeforeAnAskIsComparedFirst() async throws {
        let types = BuiltinAgents.all + [EarlyEmitter.type()]
        try await recordedRun(types: types, service: "early") { log, runID in
            let identical = try await Replayer.replay(run: runID, log: log, types: types)
            #expect(identical.divergence == nil)
            #expect(identical.exitCode == 0)

            // A different first event, then a different ask: the event comes first in the log.
            let other = EarlyEmitter.type(firstEvents: [5], firstAsk: Payload(text: "other"))
            let report = try await Replayer.replay(run: runID, log: log, types: BuiltinAgents.all + [other])
            let divergence = try #require(report.divergence)
            let event = try #require(log.events(inRun: runID).first {
                $0.type == "counter.added" && $0.causationID == "\(runID)/start"
            })
            #expect(divergence.position == event.position)
            #expect(divergence.expected.contains("event #1"))
            #expect(divergence.actual.contains(#"{"amount":5}"#))

            // An extra event before a changed ask: the ask comes first in the log. Whatever the
            // reading thread has read by then, the extra event is not compared with the event
            // recorded after the ask.
            let extraEvent = EarlyEmitter.type(firstEvents: [1, 9], firstAsk: Payload(text: "other"))
            for _ in 0..<5 {
                let extra = try await Replayer.replay(run: runID, log: log, types: BuiltinAgents.all + [extraEvent])
                let divergence = try #require(extra.divergence)
                #expect(divergence.position == (try askPosition(log, runID, ask: 1)))
                #expect(divergence.expected.contains("ask #1 to echo"))
            }
        }
    }

    @Test func handlerReadingTheSystemClockIsCaught() async throws {
        try await recordedRun(types: BuiltinAgents.all + [AgentType(ClockReader.self)], service: "clock") { log, runID in
            let report = try await Replayer.replay(run: runID, log: log,
                                                   types: BuiltinAgents.all + [AgentType(ClockReader.self)])
            let divergence = try #require(report.divergence)
            #expect(divergence.position == (try askPosition(log, runID, ask: 1)))
            #expect(divergence.agent.hasPrefix("clock/"))
        }
    }

    @Test func handlerUsingTheContextClockAndRandomReplaysIdentical() async throws {
        let types = BuiltinAgents.all + [AgentType(ContextClockReader.self)]
        try await recordedRun(types: types, service: "clock") { log, runID in
            let report = try await Replayer.replay(run: runID, log: log, types: types)
            #expect(report.divergence == nil)
            #expect(report.exitCode == 0)
        }
    }

    @Test func bumpedAgentVersionIsDriftUnlessAllowed() async throws {
        try await recordedRun { log, runID in
            let bumped = BuiltinAgents.all + [AgentType(Asker.self, descriptor: AgentDescriptor(name: "asker",
                                                                                             version: "1.1"))]
            let refused = try await Replayer.replay(run: runID, log: log, types: bumped)
            #expect(refused.exitCode == 2)
            #expect(refused.drift.map(\.service) == ["asker"])
            #expect(refused.drift.first?.recordedVersion == "1.0")
            #expect(refused.drift.first?.currentVersion == "1.1")
            #expect(refused.messagesReplayed == 0)

            let allowed = try await Replayer.replay(run: runID, log: log, types: bumped, allowDrift: true)
            #expect(allowed.exitCode == 0)
            #expect(allowed.messagesReplayed == 3)
            #expect(allowed.drift.count == 1)
        }
    }
}
