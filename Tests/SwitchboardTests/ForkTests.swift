// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import TestSupport
@testable import Switchboard
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire

/// Counts its calls across every instance: a call served from a log is not counted.
actor Tally: Agent {
    static let descriptor = AgentDescriptor(name: "tally", version: "1.0")
    static let calls = Atomic<Int>(0)
    var state = NoState()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Tally>) async throws -> Payload {
        let call = Self.calls.add(1, ordering: .relaxed).newValue
        return Payload(text: "{\"call\":\(call),\"asked\":\(message.payload.text)}")
    }
}

/// Asks `tally` four times with a random number drawn from its context, emitting an event after
/// each answer, and replies with the answers in order.
actor Chain: Agent {
    static let descriptor = AgentDescriptor(name: "chain", version: "1.0")
    var state = Counter.State()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Chain>) async throws -> Payload {
        var answers: [String] = []
        for step in 1...4 {
            let draw = context.random(in: 0...1_000_000)
            answers.append(try await context.ask("tally", Payload(text: "{\"step\":\(step),\"draw\":\(draw)}")).text)
            try context.emit(Counter.Added(amount: step))
        }
        return Payload(text: "[" + answers.joined(separator: ",") + "]")
    }
}

@Suite(.serialized) struct ForkTests {
    static let types = [AgentType(Chain.self), AgentType(Tally.self)]

    static func json(_ event: RecordedEvent) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(event.jsonPayload)) as? [String: Any]) ?? [:]
    }

    static func calls(in result: RunClient.Result) throws -> [Int] {
        let answers = try #require(try JSONSerialization.jsonObject(with: Data(result.payload.bytes)) as? [[String: Any]])
        return answers.compactMap { $0["call"] as? Int }
    }

    @Test func forkBorrowsTheParentsAnswersUpToItsPositionThenGoesLive() async throws {
        try await withTemporaryDirectory { directory in
            let embedded = try Embedded(directory: directory, types: Self.types)
            let log = embedded.router.router.log
            let context = embedded.router.context
            let endpoint = embedded.router.endpoint
            let (parent, fork, refusals) = try await embedded.serving { embedded in
                let parent = try #require(try await embedded.runs("chain", inputs: [Payload(text: "{}")]).first)
                let replies = try log.events(inRun: parent.runID)
                    .filter { $0.type == "reply.final" && Self.json($0)["service"] as? String == "tally" }
                try #require(replies.count == 4)
                let until = replies[1].position
                return try await onThread { () throws -> (RunClient.Result, RunClient.Result, [String]) in
                    let client = try RunClient(context: context, endpoint: endpoint)
                    let forkID = try client.fork(parent.runID, until: until)
                    let fork = try #require(try client.nextResult(timeout: 30_000))
                    #expect(fork.runID == forkID)
                    var refusals: [String] = []
                    for (run, position) in [("run-none", UInt64?.none), (parent.runID, UInt64?.some(1)),
                                            (parent.runID, UInt64?.some(1 << 40))] {
                        do {
                            _ = try client.fork(run, until: position)
                        } catch let refused as ForkRefused {
                            refusals.append(refused.code)
                        }
                    }
                    return (parent, fork, refusals)
                }
            }
            try embedded.router.stop()
            #expect(parent.error == nil && fork.error == nil, "\(String(describing: fork.error))")
            #expect(refusals == ["not_found", "bad_request", "bad_request"])

            // The first two answers are the parent's (same draws, same call numbers); the last two
            // were asked again, live: tally was called six times in all, not eight.
            let parentCalls = try Self.calls(in: parent)
            let forkCalls = try Self.calls(in: fork)
            #expect(parentCalls == [1, 2, 3, 4])
            #expect(forkCalls == [1, 2, 5, 6])
            #expect(Tally.calls.load(ordering: .relaxed) == 6)
            let parentAsked = try #require(try JSONSerialization.jsonObject(with: Data(parent.payload.bytes)) as? [[String: Any]])
            let forkAsked = try #require(try JSONSerialization.jsonObject(with: Data(fork.payload.bytes)) as? [[String: Any]])
            #expect(parentAsked.map { ($0["asked"] as? [String: Int]) ?? [:] } == forkAsked.map { ($0["asked"] as? [String: Int]) ?? [:] },
                    "the fork's first message draws the parent's random numbers")

            // The fork's log: linked to its parent, two borrowed asks pointing at the parent's positions.
            let events = try log.events(inRun: fork.runID)
            let first = try #require(events.first)
            #expect(first.type == "run.forked")
            #expect(Self.json(first)["parent"] as? String == parent.runID)
            let borrowed = events.filter { $0.type == "request.received" && Self.json($0)["forkedFromRun"] != nil }
            #expect(borrowed.count == 2)
            let parentRequests = try log.events(inRun: parent.runID).filter { $0.type == "request.received" }
            #expect(borrowed.compactMap { Self.json($0)["forkedFromPosition"] as? Int }
                    == parentRequests.filter { Self.json($0)["service"] as? String == "tally" }.prefix(2).map { Int($0.position) })
            #expect(events.filter { $0.type == "counter.added" }.count == 4)

            // Both runs replay identical. Tally counts outside its context (on purpose, to count
            // calls), so it is not re-executed: its recorded answers are used, like a tool's.
            let parentReport = try await Replayer.replay(run: parent.runID, log: log, types: [AgentType(Chain.self)])
            #expect(parentReport.divergence == nil)
            let forkReport = try await Replayer.replay(run: fork.runID, log: log, types: [AgentType(Chain.self)])
            #expect(forkReport.divergence == nil, "\(String(describing: forkReport.divergence))")
            #expect(forkReport.messagesReplayed == 1)
            #expect(forkReport.stepsChecked == parentReport.stepsChecked)
        }
    }

    @Test func reissuedAskBeyondTheRoutersMemoryIsAnsweredFromTheLog() async throws {
        try await withTemporaryDirectory { directory in
            let router = try EmbeddedRouter(
                directory: directory,
                configuration: RouterConfiguration(endpoint: "inproc://reissue-\(UInt64.random(in: 0...UInt64.max))",
                                                   rememberedAnswers: 1),
                durability: .none)
            let host = try AgentHost(types: [AgentType(Echo.self)], configuration: .init(endpoint: router.endpoint),
                                     context: router.context)
            let hostTask = Task { await host.run() }
            let context = router.context
            let endpoint = router.endpoint
            let replies = try await onThread { () throws -> [String] in
                let client = try MDPClient(context: context, endpoint: endpoint)
                func ask(_ id: String, reissue: Bool, payload: String? = nil) throws -> String {
                    let envelope = Envelope(messageID: id, runID: "run-reissue",
                                            headers: reissue ? [Envelope.reissueHeader: "1"] : [:])
                    let body = payload ?? "{\"id\":\"\(id)\"}"
                    try client.send(service: "echo", body: [try envelope.encoded(), Array(body.utf8)])
                    guard let reply = try client.receive(timeout: 30_000), reply.command == .final else {
                        throw TestFailure("no answer to \(id)")
                    }
                    return String(decoding: reply.body.last ?? [], as: UTF8.self)
                }
                var replies: [String] = []
                for index in 1...4 { replies.append(try ask("m-\(index)", reissue: false)) }
                // m-1 left the router's memory three answers ago; asked again as a re-issue, the log answers.
                replies.append(try ask("m-1", reissue: true))
                // The same id for another question is refused, not answered with the old answer.
                replies.append(try ask("m-2", reissue: true, payload: #"{"id":"other"}"#))
                return replies
            }
            await host.shutdown()
            _ = await hostTask.value
            try router.stop()
            #expect(replies[4] == replies[0])
            #expect(replies[0] == #"{"id":"m-1"}"#)
            #expect(replies[5].contains("nondeterministic"), "\(replies[5])")
            let events = try router.router.log.events(inRun: "run-reissue")
            // Asked six times, logged and answered by echo four times.
            #expect(events.filter { $0.type == "request.received" }.count == 4)
            #expect(events.filter { $0.type == "reply.final" }.count == 4)
        }
    }

    /// A client may send a message naming itself as its cause; its run still replays, identical.
    @Test func messageNamingItselfAsItsCauseReplays() async throws {
        try await withTemporaryDirectory { directory in
            let embedded = try Embedded(directory: directory, types: [AgentType(Echo.self)])
            let context = embedded.router.context
            let endpoint = embedded.router.endpoint
            let reply = try await embedded.serving { _ in
                try await onThread { () throws -> String in
                    let client = try MDPClient(context: context, endpoint: endpoint)
                    let envelope = Envelope(messageID: "run-self/m", runID: "run-self", causationID: "run-self/m")
                    try client.send(service: "echo", body: [try envelope.encoded(), Array(#"{"self":1}"#.utf8)])
                    guard let reply = try client.receive(timeout: 30_000), reply.command == .final else {
                        throw TestFailure("no answer")
                    }
                    return String(decoding: reply.body.last ?? [], as: UTF8.self)
                }
            }
            try embedded.router.stop()
            #expect(reply == #"{"self":1}"#)
            let report = try await Replayer.replay(run: "run-self", log: embedded.router.router.log,
                                                   types: [AgentType(Echo.self)])
            #expect(report.exitCode == 0 && report.messagesReplayed == 1, "\(String(describing: report.divergence))")
        }
    }
}
