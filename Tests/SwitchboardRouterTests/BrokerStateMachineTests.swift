// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire
import Testing
import TestSupport

@testable import SwitchboardRouter

/// The broker's decisions, driven without sockets: frames and clock ticks in, events and frames out.
@Suite struct BrokerStateMachineTests {
    var machine = BrokerStateMachine(
        configuration: RouterConfiguration(endpoint: "inproc://x", heartbeatInterval: 100, heartbeatLiveness: 3,
                                           unknownServiceGrace: 500, requestExpiry: 2000, maximumQueueLength: 2,
                                           maximumBodySize: 64),
        idPrefix: "m1.")
    var clock: Int64 = 1000

    mutating func send(_ identity: String, _ frames: [[UInt8]]) -> BrokerStateMachine.Output {
        var output = BrokerStateMachine.Output()
        machine.receive(identity: Array(identity.utf8), frames: frames, now: now, into: &output)
        return output
    }

    /// As the router reads a cycle: nothing dispatched until the cycle's ``tick(after:)``.
    mutating func read(_ identity: String, _ frames: [[UInt8]]) -> BrokerStateMachine.Output {
        var output = BrokerStateMachine.Output()
        machine.receive(identity: Array(identity.utf8), frames: frames, now: now, into: &output, dispatching: false)
        return output
    }

    mutating func tick(after milliseconds: Int64) -> BrokerStateMachine.Output {
        clock += milliseconds
        var output = BrokerStateMachine.Output()
        machine.tick(now: now, into: &output)
        return output
    }

    var now: BrokerStateMachine.Now { .init(milliseconds: clock, wall: Timestamp(nanosecondsSinceEpoch: clock * 1_000_000)) }

    func request(_ body: String, framing: MDPFraming = .plain, service: String = "echo") -> [[UInt8]] {
        MDPCodec.clientRequest(service: service, body: [Array(body.utf8)], framing: framing)
    }

    func sentTo(_ output: BrokerStateMachine.Output, _ identity: String) -> [[[UInt8]]] {
        (output.early + output.sends).filter { $0.identity == Array(identity.utf8) }.map(\.frames)
    }

    func requestsTo(_ output: BrokerStateMachine.Output, _ identity: String) -> Int {
        sentTo(output, identity).filter { (try? MDPCodec.decodeForWorker($0).command) == .workerRequest }.count
    }

    @Test mutating func onlyRequestsWhoseBatchIsCommittedGoOutEarly() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        machine.sealBatch()
        let first = send("c1", request("a"))
        #expect(first.early.isEmpty && first.sends.count == 1)  // received this cycle: after the commit
        let queued = send("c2", request("b"))
        #expect(queued.sends.isEmpty && queued.early.isEmpty)   // worker busy
        machine.sealBatch()
        // Not committed yet: "b" may not go out early.
        let notYet = send("w1", MDPCodec.workerReply(.workerPartial, client: Array("c1".utf8), body: [[0]]))
        #expect(notYet.early.isEmpty)
        machine.markCommitted(through: 2)
        let reply = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [[1]]))
        // "b" was committed in the last cycle: to the worker at once; the reply waits for the commit.
        #expect(reply.early.map { String(decoding: $0.identity, as: UTF8.self) } == ["w1"])
        #expect(reply.sends.map { String(decoding: $0.identity, as: UTF8.self) } == ["c1"])
    }

    @Test mutating func requestsGoToTheLeastRecentlyUsedWorkerAndRepliesBackInTheClientsFraming() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        _ = send("w2", MDPCodec.workerReady(service: "echo", framing: .delimited))
        let first = send("c1", request("a", framing: .delimited))
        #expect(first.events.map(\.type) == ["request.received"])
        let toW1 = try #require(sentTo(first, "w1").first)
        let decoded = try MDPCodec.decodeForWorker(toW1)
        #expect(decoded.client == Array("c1".utf8) && decoded.body == [Array("a".utf8)])
        let second = send("c2", request("b"))
        #expect(try MDPCodec.decodeForWorker(try #require(sentTo(second, "w2").first), framing: .delimited).body
            == [Array("b".utf8)])

        let partial = send("w1", MDPCodec.workerReply(.workerPartial, client: Array("c1".utf8), body: [[1]]))
        #expect(partial.events.map(\.type) == ["reply.partial"])
        let final = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [[2]]))
        #expect(final.events.map(\.type) == ["reply.final"])
        #expect(final.events[0].causationID == first.events[0].messageID)
        let reply = try MDPCodec.decodeClientReply(try #require(sentTo(final, "c1").first), framing: .delimited)
        #expect(reply.command == .final && reply.body == [[2]] && reply.service == "echo")
        // A second FINAL for the same request is dropped.
        let duplicate = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [[2]]))
        #expect(duplicate.events.isEmpty && duplicate.sends.isEmpty)
        #expect(machine.duplicateReplies == 1)
    }

    @Test mutating func aDeadWorkersRequestIsRedeliveredWithTheNextAttempt() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        let received = send("c1", request("job"))
        #expect(sentTo(received, "w1").count == 1)
        _ = send("w2", MDPCodec.workerReady(service: "echo"))
        // w2 keeps heartbeating; w1 falls silent and expires after 3 intervals (300 ms).
        var expired = BrokerStateMachine.Output()
        for _ in 0..<4 where expired.events.isEmpty {
            _ = send("w2", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            expired = tick(after: 90)
        }
        #expect(clock == 1360)
        try #require(expired.events.map(\.type) == ["worker.left", "request.redelivered"])
        #expect(String(decoding: expired.events[1].payload, as: UTF8.self).contains("\"attempt\":2"))
        let redelivered = try #require(sentTo(expired, "w2").first { (try? MDPCodec.decodeForWorker($0).command) == .workerRequest })
        #expect(try MDPCodec.decodeForWorker(redelivered).body == [Array("job".utf8)])
        #expect(sentTo(expired, "w1").contains(MDPCodec.workerSignal(.disconnect, framing: .plain)))
    }

    @Test mutating func errorsAreRepliesNotSilence() throws {
        // No worker: after the grace period, unknown service.
        _ = send("c1", request("x", service: "nobody"))
        #expect(tick(after: 400).sends.isEmpty)
        let unknown = tick(after: 100)
        #expect(unknown.events.map(\.type) == ["request.failed"])
        // A client's request is its run's first: its failure ends the run.
        #expect(String(decoding: unknown.events[0].payload, as: UTF8.self).contains(#""run":"failed""#))
        let body = try MDPCodec.decodeClientReply(try #require(sentTo(unknown, "c1").first)).body
        #expect(String(decoding: body[0], as: UTF8.self).contains("\"error\":\"unknown_service\""))

        // Too large.
        let large = send("c2", MDPCodec.clientRequest(service: "echo", body: [[UInt8](repeating: 0, count: 65)]))
        #expect(large.events.map(\.type) == ["request.received", "request.failed"])
        #expect(String(decoding: try MDPCodec.decodeClientReply(sentTo(large, "c2")[0]).body[0], as: UTF8.self)
            .contains("too_large"))

        // A busy worker: two wait, the third is refused, the waiting ones expire.
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        _ = send("c3", request("1"))
        _ = send("c4", request("2"))
        _ = send("c5", request("3"))
        let full = send("c6", request("4"))
        #expect(String(decoding: try MDPCodec.decodeClientReply(sentTo(full, "c6")[0]).body[0], as: UTF8.self)
            .contains("queue_full"))
        var expired: [String] = []
        for _ in 0..<25 {
            _ = send("w1", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            expired += tick(after: 90).events.map(\.type)
        }
        #expect(expired.filter { $0 == "request.failed" }.count == 2)
    }

    /// A cycle's burst is measured against the queue limit only for what idle workers cannot take.
    @Test mutating func aBurstReadInOneCycleFillsIdleWorkersBeforeTheQueueLimitApplies() throws {
        _ = send("w1", MDPCodec.workerReady(service: "llm", metadata: WorkerMetadata(version: "1", capacity: 4).encoded()))
        var refused: [String] = []
        var dispatched = 0
        for index in 0..<7 {
            let envelope = try Envelope(messageID: "r\(index)").encoded()
            let output = read("c", MDPCodec.clientRequest(service: "llm", body: [envelope, []]))
            if output.events.contains(where: { $0.type == "request.failed" }) { refused.append("r\(index)") }
            dispatched += requestsTo(output, "w1")
        }
        // Capacity 4 plus a queue of 2: only the seventh is refused.
        #expect(refused == ["r6"])
        dispatched += requestsTo(tick(after: 0), "w1")  // the cycle's tick also sends a heartbeat
        #expect(dispatched == 4)
        #expect(machine.workers[Array("w1".utf8)]?.inFlight.count == 4)
        #expect(machine.services["llm"]?.queued == 2)
    }

    /// A worker freed in the cycle a queued request would expire takes it: it is not failed.
    @Test mutating func aRequestDueToExpireGoesToTheWorkerFreedInTheSameCycle() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        _ = send("c1", request("a"))
        _ = send("c2", request("b"))  // waits: w1 is busy
        var failures = 0
        for _ in 0..<22 {
            _ = send("w1", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            failures += tick(after: 90).events.filter { $0.type == "request.failed" }.count
        }
        #expect(failures == 0)
        clock += 20  // the moment "b" expires
        _ = read("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [[1]]))
        let cycle = tick(after: 0)
        #expect(!cycle.events.contains { $0.type == "request.failed" })
        let toWorker = try #require(sentTo(cycle, "w1").first { (try? MDPCodec.decodeForWorker($0).command) == .workerRequest })
        #expect(try MDPCodec.decodeForWorker(toWorker).body == [Array("b".utf8)])
    }

    /// The queue is read for expiries only when one may be due; a request whose deadline is earlier
    /// than those of the requests ahead of it still expires on time, and alone.
    @Test mutating func aRequestDueBeforeThoseAheadOfItExpiresOnTimeAndAlone() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        _ = send("c1", request("busy"))
        let ask = { (id: String, deadline: Int64) in
            MDPCodec.clientRequest(service: "echo", body: [try Envelope(messageID: id, deadline: deadline).encoded(), [1]])
        }
        _ = send("c2", try ask("late", 0))  // the suite's expiry: 2 s
        _ = send("c3", try ask("soon", now.wall.nanosecondsSinceEpoch + 500_000_000))
        var failed: [String] = []
        for _ in 0..<5 {
            _ = send("w1", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            failed += tick(after: 90).events.filter { $0.type == "request.failed" }.map(\.messageID)
        }
        #expect(failed.isEmpty)  // 450 ms
        _ = send("w1", MDPCodec.workerSignal(.heartbeat, framing: .plain))
        failed += tick(after: 60).events.filter { $0.type == "request.failed" }.map(\.messageID)
        #expect(failed == ["soon/error"])
        #expect(machine.services["echo"]?.queued == 1)
        for _ in 0..<20 {
            _ = send("w1", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            failed += tick(after: 90).events.filter { $0.type == "request.failed" }.map(\.messageID)
        }
        #expect(failed == ["soon/error", "late/error"])
    }

    /// A run's lock gets one entry per (service, version, digest) it used: none for a second
    /// worker of the same build, one for a worker of another version.
    @Test mutating func aRunsLockHasOneEntryPerBuildOfEachServiceItUsed() throws {
        func ready(_ worker: String, version: String) {
            _ = send(worker, MDPCodec.workerReady(service: "llm", metadata: WorkerMetadata(
                version: version, configDigest: "d", capacity: 1).encoded()))
        }
        func ask(_ id: String, run: String) throws -> [String] {
            let envelope = try Envelope(messageID: id, runID: run).encoded()
            let output = send("c", MDPCodec.clientRequest(service: "llm", body: [envelope, []]))
            return output.events.filter { $0.type == "lock.recorded" }.map { $0.runID }
        }
        func finish(_ worker: String, _ id: String) throws {
            let reply = try Envelope(messageID: "x-\(id)", causationID: id).encoded()
            _ = send(worker, MDPCodec.workerReply(.workerFinal, client: Array("c".utf8), body: [reply]))
        }
        ready("w1", version: "1")
        #expect(try ask("a", run: "r1") == ["r1"])
        try finish("w1", "a")
        #expect(try ask("b", run: "r1") == [])       // the same worker again
        try finish("w1", "b")
        ready("w2", version: "1")                     // another worker of the same build
        _ = send("w1", MDPCodec.workerSignal(.disconnect, framing: .plain))
        #expect(try ask("c", run: "r1") == [])
        try finish("w2", "c")
        #expect(try ask("d", run: "r2") == ["r2"])  // another run
        try finish("w2", "d")
        ready("w3", version: "2")
        _ = send("w2", MDPCodec.workerSignal(.disconnect, framing: .plain))
        let drifted = try ask("e", run: "r1")
        #expect(drifted == ["r1"])                   // a new version in the same run
        let recorded = try #require(machine.workers[Array("w3".utf8)])
        #expect(recorded.version == "2" && recorded.configDigest == "d")
    }

    @Test mutating func mmiServiceAnswersFromTheRegistry() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        for (name, status) in [("echo", "200"), ("other", "404")] {
            let output = send("c", MDPCodec.clientRequest(service: "mmi.service", body: [Array(name.utf8)]))
            #expect(try MDPCodec.decodeClientReply(sentTo(output, "c")[0]).body == [Array(status.utf8)])
        }
        let unknown = send("c", MDPCodec.clientRequest(service: "mmi.nothing", body: []))
        #expect(try MDPCodec.decodeClientReply(sentTo(unknown, "c")[0]).body == [Array("501".utf8)])
        // Logged, but in no run: polling for a worker adds nothing to the run list.
        #expect(unknown.events.map(\.type) == ["request.received", "reply.final"])
        #expect(unknown.events.allSatisfy { $0.runID.isEmpty })
        // A plain request to a service does start a run.
        #expect(send("c", request("x")).events.first?.runID.hasPrefix("run-m1.") == true)
    }

    @Test mutating func nativeWorkersTakeSeveralRequestsAndCorrelateByMessageID() throws {
        let metadata = WorkerMetadata(version: "1.2", configDigest: "abc", capacity: 2).encoded()
        let joined = send("w1", MDPCodec.workerReady(service: "llm", metadata: metadata))
        #expect(String(decoding: joined.events[0].payload, as: UTF8.self).contains("\"capacity\":2"))
        let env = { (id: String) in try Envelope(messageID: id, runID: "run-1").encoded() }
        let a = send("c1", MDPCodec.clientRequest(service: "llm", body: [try env("a"), [1]]))
        let b = send("c1", MDPCodec.clientRequest(service: "llm", body: [try env("b"), [2]]))
        let c = send("c1", MDPCodec.clientRequest(service: "llm", body: [try env("c"), [3]]))
        #expect(sentTo(a, "w1").count == 1 && sentTo(b, "w1").count == 1 && sentTo(c, "w1").isEmpty)
        #expect(a.events[0].runID == "run-1" && a.events[0].messageID == "a")
        // Reply to b first: correlation is by the envelope, not by order.
        let reply = try Envelope(messageID: "b/final", runID: "run-1", causationID: "b").encoded()
        let done = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [reply, [22]]))
        #expect(done.events.map(\.causationID) == ["b"])
        #expect(sentTo(done, "w1").count == 1)  // c is dispatched into the freed slot
        // The same request again (a reconnected client) gets the stored answer, not a second call.
        let again = send("c9", MDPCodec.clientRequest(service: "llm", body: [try env("b"), [2]]))
        #expect(again.events.isEmpty)
        #expect(try MDPCodec.decodeClientReply(sentTo(again, "c9")[0]).body.last == [22])
    }

    /// A native worker that answers with the envelope it was sent (the request's id, no causation
    /// id) answers that request: the id is read when the causation id names none in flight.
    @Test mutating func aNativeReplyCarryingTheRequestsOwnEnvelopeAnswersIt() throws {
        let metadata = WorkerMetadata(version: "1", configDigest: "", capacity: 4).encoded()
        _ = send("w1", MDPCodec.workerReady(service: "agent", metadata: metadata))
        let envelope = try Envelope(messageID: "run-e/start", runID: "run-e").encoded()
        let dispatched = send("c1", MDPCodec.clientRequest(service: "agent", body: [envelope, [1]]))
        let sent = try MDPCodec.decodeForWorker(try #require(sentTo(dispatched, "w1").first))
        #expect(try Envelope(decoding: sent.body[0]).causationID.isEmpty)
        let done = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [sent.body[0], [9]]))
        #expect(done.events.map(\.type) == ["reply.final"] && done.events.map(\.causationID) == ["run-e/start"])
        #expect(try MDPCodec.decodeClientReply(try #require(sentTo(done, "c1").first)).body.last == [9])
        // Again: nothing in flight has that id now.
        let again = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [sent.body[0], [9]]))
        #expect(again.events.isEmpty && sentTo(again, "c1").isEmpty)
        #expect(machine.duplicateReplies == 1)
    }

    @Test mutating func aNativeReplyNamingNoRequestInFlightAnswersNoOtherRequestOfTheClient() throws {
        let metadata = WorkerMetadata(version: "1", configDigest: "", capacity: 4).encoded()
        _ = send("w1", MDPCodec.workerReady(service: "agent", metadata: metadata))
        let env = { (id: String, run: String) in try Envelope(messageID: id, runID: run).encoded() }
        _ = send("c1", MDPCodec.clientRequest(service: "agent", body: [try env("run-a/start", "run-a"), [1]]))
        _ = send("c1", MDPCodec.clientRequest(service: "agent", body: [try env("run-b/start", "run-b"), [2]]))
        let reply = { (run: String) in
            try Envelope(messageID: "\(run)/start/reply", runID: run, causationID: "\(run)/start").encoded()
        }
        let first = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [try reply("run-a"), [11]]))
        #expect(first.events.map(\.causationID) == ["run-a/start"])
        // A re-executed handler answers run-a again while run-b is the client's only request in flight.
        let repeated = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8),
                                                       body: [try reply("run-a"), [11]]))
        #expect(repeated.events.isEmpty)
        #expect(sentTo(repeated, "c1").isEmpty)
        #expect(machine.duplicateReplies == 1)
        let second = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [try reply("run-b"), [22]]))
        #expect(second.events.map(\.causationID) == ["run-b/start"])
        #expect(try MDPCodec.decodeClientReply(sentTo(second, "c1")[0]).body.last == [22])
    }

    @Test mutating func aRecoveredRequestIsNotAnsweredAtAnAddressZeroMQGeneratedForTheLastRouter() throws {
        func recovered(_ id: String, client: [UInt8]) throws -> BrokerStateMachine.Request {
            BrokerStateMachine.Request(
                messageID: id, runID: "run-\(id)", service: "agent", client: client, clientFraming: .plain,
                native: true, body: [try Envelope(messageID: id, runID: "run-\(id)").encoded(), [1]], attempt: 2,
                receivedAt: clock, expiresAt: clock + 2000)
        }
        var output = BrokerStateMachine.Output()
        // Generated addresses start with a zero byte; a socket's own routing id cannot.
        machine.enqueueRecovered(try recovered("gen", client: [0, 0x6b, 0x8b, 0x45, 0x67]), now: now, into: &output)
        machine.enqueueRecovered(try recovered("fixed", client: Array("host-1".utf8)), now: now, into: &output)
        let metadata = WorkerMetadata(version: "1", configDigest: "", capacity: 4).encoded()
        _ = send("w1", MDPCodec.workerReady(service: "agent", metadata: metadata))
        let reply = { (id: String, client: [UInt8]) in
            MDPCodec.workerReply(.workerFinal, client: client, body: [
                try Envelope(messageID: "\(id)/reply", runID: "run-\(id)", causationID: id).encoded(), [7],
            ])
        }
        let gen = send("w1", try reply("gen", [0, 0x6b, 0x8b, 0x45, 0x67]))
        #expect(gen.events.map(\.causationID) == ["gen"])
        #expect(gen.sends.allSatisfy { $0.identity.isEmpty }, "an answer went to the stale address")
        let fixed = send("w1", try reply("fixed", Array("host-1".utf8)))
        #expect(sentTo(fixed, "host-1").count == 1)
        // The client, connected again under a new address, asks again and gets the answer.
        let again = send("c2", MDPCodec.clientRequest(service: "agent", body: [
            try Envelope(messageID: "gen", runID: "run-gen").encoded(), [1],
        ]))
        #expect(again.events.isEmpty)
        #expect(try MDPCodec.decodeClientReply(sentTo(again, "c2")[0]).body.last == [7])
    }

    @Test mutating func aRequestTheControlPlaneHoldsIsAttachedWhenAskedAgainNotLoggedTwice() throws {
        func ask(_ service: String, _ id: String, run: String, _ body: String, from client: String)
            throws -> BrokerStateMachine.Output
        {
            send(client, MDPCodec.clientRequest(service: service, body: [
                try Envelope(messageID: id, runID: run, headers: [Envelope.reissueHeader: "1"]).encoded(),
                Array(body.utf8),
            ]))
        }
        machine.control.modes["run-p"] = .paused
        let cases = [
            ("sb.approval", "ap-1", "run-a", #"{"title":"ok?"}"#),
            ("sb.timer", "t-1", "run-t", #"{"delayMs":60000}"#),
            ("echo", "held-1", "run-p", "{}"),
        ]
        for (service, id, run, body) in cases {
            let first = try ask(service, id, run: run, body, from: "c1")
            #expect(first.events.contains { $0.type == "request.received" && $0.messageID == id }, "\(id)")
            // The client reconnected and asks again: the request it had is its own again.
            let again = try ask(service, id, run: run, body, from: "c2")
            #expect(again.events.isEmpty, "\(id) was logged again: \(again.events.map(\.type))")
            #expect(again.sends.isEmpty && again.early.isEmpty)
        }
        #expect(machine.control.parked.values.map(\.request.client) == [Array("c2".utf8)])
        #expect(machine.control.timers.map(\.request.client) == [Array("c2".utf8)])
        #expect(machine.control.held["run-p"]?.map(\.client) == [Array("c2".utf8)])
    }

    /// Paused while its first request was under way, which was answered (the log says completed),
    /// then sent a new request: the router holds it, and the log says paused again, so that a
    /// restarted router, which takes paused runs from the log, holds it too.
    @Test mutating func aNewRequestHeldForAPausedRunKeepsTheRunPausedInTheLog() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .none))
            machine.control.runState = { [log] run in (try? log.runStatus(run))??.state.rawValue }
            func commit(_ output: BrokerStateMachine.Output) throws { try log.append(output.events) }
            func start(_ id: String) throws -> [[UInt8]] {
                MDPCodec.clientRequest(service: "echo", body: [try Envelope(messageID: id, runID: "run-p").encoded(), [1]])
            }
            try commit(send("w1", MDPCodec.workerReady(service: "echo")))
            let first = send("c1", try start("run-p/start"))
            try commit(first)
            let toWorker = try MDPCodec.decodeForWorker(sentTo(first, "w1")[0])
            try commit(send("op", MDPCodec.clientRequest(service: "sb.control", body: [
                Array(#"{"op":"pause","run":"run-p"}"#.utf8),
            ])))
            try commit(send("w1", MDPCodec.workerReply(.workerFinal, client: toWorker.client, body: [[2]])))
            #expect(try log.runStatus("run-p")?.state == .completed)
            let second = send("c1", try start("run-p/second"))
            #expect(second.events.map(\.type) == ["request.received", "run.paused"])
            #expect(machine.control.held["run-p"]?.map(\.messageID) == ["run-p/second"])
            try commit(second)
            #expect(try log.runStatus("run-p")?.state == .paused)
            #expect(try log.runStatus("run-p")?.openRequests == 1)
        }
    }

    /// An agent host repeats an ask it waited long for: a control command asked again under its
    /// id gets the first answer and runs once.
    @Test mutating func aControlCommandAskedAgainIsAnsweredOnceAndRunsOnce() throws {
        machine.control.runState = { _ in "running" }
        func pause(from client: String) throws -> BrokerStateMachine.Output {
            send(client, MDPCodec.clientRequest(service: "sb.control", body: [
                try Envelope(messageID: "ctl-1", runID: "run-a", headers: [Envelope.reissueHeader: "1"]).encoded(),
                Array(#"{"op":"pause","run":"run-p"}"#.utf8),
            ]))
        }
        let first = try pause(from: "c1")
        #expect(first.events.map(\.type) == ["run.paused"])
        let again = try pause(from: "c2")
        #expect(again.events.isEmpty)
        #expect(try MDPCodec.decodeClientReply(sentTo(again, "c2")[0]).body
            == MDPCodec.decodeClientReply(sentTo(first, "c1")[0]).body)
        #expect(String(decoding: try MDPCodec.decodeClientReply(sentTo(again, "c2")[0]).body.last ?? [], as: UTF8.self)
            == #"{"ok":true,"state":"paused"}"#)
    }

    /// A repeat carries a `reissue` header its first copy may not have had: the limit on a
    /// request's size does not count it.
    @Test mutating func aRepeatIsMeasuredWithoutItsReissueHeader() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        let plain = try Envelope(messageID: "big", runID: "run-b").encoded()
        let marked = try Envelope(messageID: "big", runID: "run-b", headers: [Envelope.reissueHeader: "1"]).encoded()
        #expect(marked.count == plain.count + 11)
        // Exactly at the limit (64 bytes) without the header.
        let payload = [UInt8](repeating: 7, count: 64 - plain.count)
        let output = send("c1", MDPCodec.clientRequest(service: "echo", body: [marked, payload]))
        #expect(output.events.map(\.type) == ["request.received"])
        #expect(requestsTo(output, "w1") == 1)
    }

    @Test mutating func aPausedRunThatCompletedMeanwhileCanBeResumedButNotPausedAgain() throws {
        machine.control.runState = { _ in "completed" }
        machine.control.modes["run-p"] = .paused
        func command(_ op: String) throws -> String {
            let output = send("op", MDPCodec.clientRequest(service: "sb.control", body: [
                Array(#"{"op":"\#(op)","run":"run-p"}"#.utf8),
            ]))
            return String(decoding: try MDPCodec.decodeClientReply(sentTo(output, "op")[0]).body.last ?? [], as: UTF8.self)
        }
        #expect(try command("pause").contains("conflict"))
        #expect(try command("resume").contains(#""ok":true"#))
        #expect(machine.control.modes["run-p"] == nil)
        #expect(try command("resume").contains("conflict"))
    }

    @Test mutating func plainWorkersSeePlainBodiesAndNativeClientsStillGetEnvelopes() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        let envelope = try Envelope(messageID: "n-1", runID: "run-n").encoded()
        let dispatched = send("c1", MDPCodec.clientRequest(service: "echo", body: [envelope, [7]]))
        #expect(try MDPCodec.decodeForWorker(sentTo(dispatched, "w1")[0]).body == [[7]])
        let done = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [[8]]))
        let reply = try MDPCodec.decodeClientReply(sentTo(done, "c1")[0])
        #expect(try Envelope(decoding: reply.body[0]).causationID == "n-1")
        #expect(reply.body[1] == [8])
    }

    @Test mutating func messagesOfOneKeyGoToTheWorkerHoldingItAndWaitWhileItIsBusy() throws {
        let metadata = WorkerMetadata(version: "1", capacity: 1).encoded()
        _ = send("w1", MDPCodec.workerReady(service: "agent", metadata: metadata))
        _ = send("w2", MDPCodec.workerReady(service: "agent", metadata: metadata))
        func ask(_ id: String, key: String) throws -> BrokerStateMachine.Output {
            let envelope = try Envelope(messageID: id, runID: "run-\(id)", headers: ["key": key]).encoded()
            return send("c", MDPCodec.clientRequest(service: "agent", body: [envelope, []]))
        }
        func finish(_ worker: String, _ id: String) throws -> BrokerStateMachine.Output {
            let reply = try Envelope(messageID: id + "/reply", causationID: id).encoded()
            return send(worker, MDPCodec.workerReply(.workerFinal, client: Array("c".utf8), body: [reply]))
        }
        // a (key k) goes to w1; b (key k) waits for w1 though w2 is free; c (key j) takes w2.
        #expect(sentTo(try ask("a", key: "k"), "w1").count == 1)
        let b = try ask("b", key: "k")
        #expect(sentTo(b, "w1").isEmpty && sentTo(b, "w2").isEmpty)
        #expect(sentTo(try ask("c", key: "j"), "w2").count == 1)
        // w1 finishes a: b follows it there.
        #expect(sentTo(try finish("w1", "a"), "w1").count == 1)
        // w2 is free first, yet k stays with w1 and j with w2.
        _ = try finish("w2", "c")
        _ = try finish("w1", "b")
        #expect(sentTo(try ask("d", key: "k"), "w1").count == 1)
        _ = try finish("w1", "d")
        #expect(sentTo(try ask("e", key: "j"), "w2").count == 1)
        // w1 falls silent and is dropped: its key k moves to w2 once w2 is free.
        for _ in 0..<4 {
            _ = send("w2", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            _ = tick(after: 90)
        }
        #expect(machine.workers[Array("w1".utf8)] == nil)
        #expect(sentTo(try ask("f", key: "k"), "w2").isEmpty)
        #expect(sentTo(try finish("w2", "e"), "w2").count == 1)
        #expect(machine.pins.values.allSatisfy { $0.worker == Array("w2".utf8) })
    }

    @Test mutating func aNativeWorkerNeverHoldsMoreThanItsCapacity() throws {
        _ = send("w1", MDPCodec.workerReady(service: "llm", metadata: WorkerMetadata(version: "1", capacity: 2).encoded()))
        var dispatched = 0
        for index in 0..<6 {
            let envelope = try Envelope(messageID: "r\(index)").encoded()
            dispatched += sentTo(send("c", MDPCodec.clientRequest(service: "llm", body: [envelope, []])), "w1").count
        }
        #expect(dispatched == 2)
        for index in 0..<2 {
            let reply = try Envelope(messageID: "x", causationID: "r\(index)").encoded()
            let done = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c".utf8), body: [reply]))
            #expect(sentTo(done, "w1").count == 1)  // exactly one freed slot refilled per FINAL
        }
        #expect(machine.workers[Array("w1".utf8)]?.inFlight.count == 2)
    }

    @Test mutating func oversizedRepliesLongIDsAndForgottenServicesAreHandled() throws {
        // A reply over the limit becomes an error for the client; the worker is free again.
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        _ = send("c1", request("a"))
        let big = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [[UInt8](repeating: 1, count: 65)]))
        #expect(big.events.map(\.type) == ["request.failed"])
        #expect(String(decoding: try MDPCodec.decodeClientReply(sentTo(big, "c1")[0]).body[0], as: UTF8.self)
            .contains("reply_too_large"))
        #expect(sentTo(send("c2", request("b")), "w1").count == 1)

        // Ids that would overflow the log's 255-byte fields once suffixed are refused up front.
        let long = try Envelope(messageID: String(repeating: "m", count: 201)).encoded()
        let refused = send("c3", MDPCodec.clientRequest(service: "echo", body: [long, []]))
        #expect(refused.events.isEmpty)
        #expect(String(decoding: try MDPCodec.decodeClientReply(sentTo(refused, "c3")[0]).body.last ?? [], as: UTF8.self)
            .contains("malformed_envelope"))

        // A service nobody offers is forgotten once its waiting requests failed.
        _ = send("c4", request("x", service: "ghost"))
        #expect(machine.services["ghost"] != nil)
        _ = tick(after: 600)
        #expect(machine.services["ghost"] == nil)
    }

    @Test mutating func plainClientsNeverSeeANativeWorkersEnvelope() throws {
        _ = send("w1", MDPCodec.workerReady(service: "llm", metadata: WorkerMetadata(version: "1").encoded()))
        let dispatched = send("c1", request("q", service: "llm"))
        let toWorker = try MDPCodec.decodeForWorker(sentTo(dispatched, "w1")[0])
        let envelope = try Envelope(decoding: toWorker.body[0])
        #expect(envelope.attempt == 1 && envelope.runID.hasPrefix("run-"))
        let reply = try Envelope(messageID: "a", causationID: envelope.messageID).encoded()
        let done = send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c1".utf8), body: [reply, [5]]))
        #expect(try MDPCodec.decodeClientReply(sentTo(done, "c1")[0]).body == [[5]])
    }

    @Test mutating func aClientAskingAgainWhileAPlainWorkerHoldsTheRequestGetsTheAnswer() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        let envelope = try Envelope(messageID: "n-7").encoded()
        let first = send("old", MDPCodec.clientRequest(service: "echo", body: [envelope, [1]]))
        let toWorker = try MDPCodec.decodeForWorker(sentTo(first, "w1")[0])
        // The client reconnects under a new address and asks again.
        let again = send("new", MDPCodec.clientRequest(service: "echo", body: [envelope, [1]]))
        #expect(again.events.isEmpty && again.sends.isEmpty)
        let done = send("w1", MDPCodec.workerReply(.workerFinal, client: toWorker.client, body: [[2]]))
        #expect(done.events.map(\.type) == ["reply.final"])
        #expect(try MDPCodec.decodeClientReply(sentTo(done, "new")[0]).body.last == [2])
        // The answer went to the last to ask; the other, asking again later, gets it too.
        let late = send("old", MDPCodec.clientRequest(service: "echo", body: [envelope, [1]]))
        #expect(late.events.isEmpty)
        #expect(try MDPCodec.decodeClientReply(sentTo(late, "old")[0]).body.last == [2])
    }

    /// A backlog asked again from new addresses (hosts that reconnected) is found wherever its
    /// requests have moved meanwhile: taken from the front, compacted, put back at the front by a
    /// dead worker. Each answer goes to the last address that asked; nothing is logged twice.
    @Test mutating func aBacklogAskedAgainIsAttachedWhereverItsRequestsHaveMoved() throws {
        machine = BrokerStateMachine(
            configuration: RouterConfiguration(endpoint: "inproc://x", heartbeatInterval: 100, heartbeatLiveness: 3,
                                               requestExpiry: 600_000, maximumQueueLength: 1000),
            idPrefix: "m1.")
        var received = 0
        var answered: [String: [String]] = [:]  // request id → the addresses its answer went to
        var holding: (id: String, client: [UInt8])?
        func record(_ output: BrokerStateMachine.Output, worker: String) throws {
            received += output.events.filter { $0.type == "request.received" }.count
            for (identity, frames) in output.early + output.sends {
                if String(decoding: identity, as: UTF8.self) == worker {
                    guard let request = try? MDPCodec.decodeForWorker(frames), request.command == .workerRequest
                    else { continue }
                    holding = (try Envelope(decoding: request.body[0]).messageID, request.client)
                } else if let reply = try? MDPCodec.decodeClientReply(frames) {
                    answered[try Envelope(decoding: reply.body[0]).causationID, default: []]
                        .append(String(decoding: identity, as: UTF8.self))
                }
            }
        }
        func ask(_ index: Int, from client: String, again: Bool = false) throws -> BrokerStateMachine.Output {
            let headers = again ? [Envelope.reissueHeader: "1"] : [:]
            return send(client, MDPCodec.clientRequest(service: "agent", body: [
                try Envelope(messageID: "r\(index)", runID: "run-\(index)", headers: headers).encoded(), [1],
            ]))
        }
        func askAgain(_ index: Int, from client: String) throws {
            let output = try ask(index, from: client, again: true)
            #expect(output.events.isEmpty && output.sends.isEmpty && output.early.isEmpty, "r\(index)")
        }
        func finish(on worker: String) throws {
            let (id, client) = try #require(holding)
            holding = nil
            try record(send(worker, MDPCodec.workerReply(.workerFinal, client: client, body: [
                try Envelope(messageID: "\(id)/reply", runID: "run-\(id.dropFirst())", causationID: id).encoded(), [2],
            ])), worker: worker)
        }
        let metadata = WorkerMetadata(version: "1", capacity: 1).encoded()
        _ = send("w1", MDPCodec.workerReady(service: "agent", metadata: metadata))
        for index in 0..<200 { try record(ask(index, from: "old"), worker: "w1") }
        #expect(holding?.id == "r0" && machine.services["agent"]?.queued == 199)
        try askAgain(150, from: "a150")
        for round in 1...100 {
            if round == 40 { try askAgain(120, from: "a120") }
            try finish(on: "w1")
        }
        // r100 is at w1; the hundred taken before it have been dropped from the queue's storage.
        #expect(holding?.id == "r100" && machine.services["agent"]?.queued == 99)
        try askAgain(160, from: "a160")
        try askAgain(100, from: "a100")
        // w1 falls silent: r100 goes back to the front of the queue, where it is asked again.
        let expired = tick(after: 400)
        #expect(expired.events.map(\.type) == ["worker.left", "request.redelivered"])
        holding = nil
        try askAgain(100, from: "b100")
        try askAgain(101, from: "a101")
        try record(send("w2", MDPCodec.workerReady(service: "agent", metadata: metadata)), worker: "w2")
        #expect(holding?.id == "r100")
        for _ in 100..<200 { try finish(on: "w2") }
        #expect(holding == nil && machine.services["agent"]?.queued == 0)
        #expect(received == 200)
        let moved = ["r100": "b100", "r101": "a101", "r120": "a120", "r150": "a150", "r160": "a160"]
        for index in 0..<200 {
            #expect(answered["r\(index)"] == [moved["r\(index)"] ?? "old"], "r\(index)")
        }
    }

    @Test mutating func aRequestRedeliveredAfterALongCallDoesNotExpireAtOnce() throws {
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        _ = send("c1", request("long"))
        _ = send("w2", MDPCodec.workerReady(service: "echo"))
        var types: [String] = []
        // Both heartbeat for longer than the 2 s expiry: w1 is busy with the request all along.
        for _ in 0..<25 {
            _ = send("w1", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            _ = send("w2", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            types += tick(after: 100).events.map(\.type)
        }
        // Then w1 falls silent and dies.
        for _ in 0..<5 {
            _ = send("w2", MDPCodec.workerSignal(.heartbeat, framing: .plain))
            types += tick(after: 100).events.map(\.type)
        }
        #expect(types == ["worker.left", "request.redelivered"])
    }

    @Test mutating func tooManyFramesAreRefusedLikeTooManyBytes() throws {
        let frames = MDPCodec.clientRequest(service: "echo", body: [[UInt8]](repeating: [], count: 1025))
        let output = send("c1", frames)
        #expect(output.events.map(\.type) == ["request.received", "request.failed"])
        #expect(output.events[0].payload.count < 200)
    }

    @Test func theObserverReadsTheTypeOfACloudEvent() {
        #expect(EventObserver.cloudEventType(#"{"specversion":"1.0","id":"3","source":"urn:x","type":"run.started","time":"t"}"#)
            == "run.started")
        #expect(EventObserver.cloudEventType(#"{"id":"1","type":"a\"b"}"#) == nil)
        #expect(EventObserver.cloudEventType("{}") == nil)
    }

    @Test mutating func protocolViolationsAreCountedAndDoNotCrash() {
        _ = send("x", [[9, 9]])
        _ = send("x", [])
        _ = send("w1", MDPCodec.workerReady(service: "echo"))
        let twice = send("w1", MDPCodec.workerReady(service: "echo"))
        #expect(twice.events.map(\.type) == ["worker.left"])
        let stranger = send("w9", MDPCodec.workerReply(.workerFinal, client: [1], body: [], framing: .delimited))
        #expect(sentTo(stranger, "w9") == [MDPCodec.workerSignal(.disconnect, framing: .delimited)])
        #expect(machine.invalidMessages == 4)
    }
}
