// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import SwitchboardLog
import TestSupport

/// Counts events per type; a second projection to test catch-up and versioning.
struct TypeCountProjection: Projection {
    var name: String { "type-count" }
    var version: UInt32
    func apply(_ events: [RecordedEvent], to state: ProjectionState) throws {
        for event in events {
            let key = Array(event.type.utf8)
            let count = try state.value(forKey: key).map { UInt64($0[0]) | UInt64($0[1]) << 8 } ?? 0
            let next = count + UInt64(version)
            try state.setValue([UInt8(next & 0xFF), UInt8(next >> 8)], forKey: key)
        }
    }
}

@Suite struct ProjectionTests {
    /// Interleaved runs with lifecycle events, appended in uneven batches.
    static func appendWorkload(to log: EventLog) throws {
        var generator = SystemRandomNumberGenerator()
        var pending: [NewEvent] = []
        for index in 0..<3000 {
            let run = "run-\(index % 17)"
            let type = index % 17 == 3 && index > 2000 ? "run.completed" : index % 29 == 0 ? "run.paused" : "step"
            pending.append(jsonEvent(type, run: run, stream: run, "{\"i\":\(index)}"))
            if Int.random(in: 0..<10, using: &generator) == 0 || index == 2999 {
                try log.append(pending)
                pending = []
            }
        }
    }

    @Test func rebuildingFromPositionZeroIsByteIdenticalToIncremental() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .none, projections: [TypeCountProjection(version: 1)]))
            try Self.appendWorkload(to: log)
            for name in ["run-status", "type-count"] {
                let incremental = try log.projectionState(named: name)
                #expect(incremental.checkpoint == 3000)
                #expect(!incremental.entries.isEmpty)
                try log.rebuildProjection(named: name)
                let rebuilt = try log.projectionState(named: name)
                #expect(rebuilt.checkpoint == 3000)
                #expect(rebuilt.entries == incremental.entries)
            }
            #expect { try log.rebuildProjection(named: "nope") } throws: { ($0 as? EventLogError)?.code == .notFound }
        }
    }

    @Test func projectionNamesMustBeValidAndUnique() throws {
        try withTemporaryDirectory { dir in
            for projections in [[TypeCountProjection(version: 1), TypeCountProjection(version: 2)]] as [[any Projection]] {
                #expect { try EventLog.open(at: dir, configuration: .init(projections: projections)) } throws: {
                    ($0 as? EventLogError)?.code == .invalidConfiguration
                }
            }
            #expect { try EventLog.open(at: dir, configuration: .init(projections: [RunStatusProjection()])) } throws: {
                ($0 as? EventLogError)?.message.contains("two projections are named \"run-status\"") == true
            }
        }
    }

    @Test func runStatusFollowsLifecycleEvents() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            let t0 = Timestamp(nanosecondsSinceEpoch: 1000)
            let t1 = Timestamp(nanosecondsSinceEpoch: 2000)
            try log.append([NewEvent(type: "run.started", runID: "a", timestamp: t0),
                            NewEvent(type: "step", runID: "b", timestamp: t0)])
            try log.append([NewEvent(type: "step", runID: "a", timestamp: t0),
                            NewEvent(type: "run.completed", runID: "a", timestamp: t1)])
            try log.append(NewEvent(type: "run.failed", runID: "b", timestamp: t1))
            let a = try #require(try log.runStatus("a"))
            #expect(a.state == .completed)
            #expect(a.firstPosition == 1 && a.lastPosition == 4 && a.eventCount == 3)
            #expect(a.firstTimestamp == t0 && a.lastTimestamp == t1)
            #expect(try log.runStatus("b")?.state == .failed)
            #expect(try log.runStatus("b")?.eventCount == 2)
            #expect(try log.runStatus("c") == nil)
            #expect(try log.runs().map(\.runID) == ["a", "b"])
        }
    }

    /// Runs without lifecycle events (agent runs) end with the router's reply to their first
    /// request, or its failure; a state set by lifecycle events is kept.
    @Test func runStatusFollowsTheRepliesToARunsRequestsWithNoCausation() throws {
        func reply(_ run: String, ends: String?) -> NewEvent {
            var fields = FieldsPayload.Writer(capacity: 64)
            fields.string("service", "svc")
            fields.frames("body", [Array("{}".utf8)])
            if let ends { fields.string("run", ends) }
            return NewEvent(type: "reply.final", runID: run, causationID: "", payload: fields.bytes,
                            payloadEncoding: .fields)
        }
        func failure(_ run: String, _ json: String) -> NewEvent {
            NewEvent(type: "request.failed", runID: run, payload: Array(json.utf8))
        }
        func lifecycle(_ type: String, _ run: String) -> NewEvent { NewEvent(type: type, runID: run) }
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            let received = { (run: String) in NewEvent(type: "request.received", runID: run) }
            let runs = ["done", "broke", "asked", "paused", "failed", "lifecycle", "quoted", "raced", "two", "again",
                        "cancelled"]
            try log.append(runs.map(received))
            try log.append([
                reply("done", ends: "completed"), reply("broke", ends: "failed"), reply("asked", ends: nil),
                lifecycle("run.paused", "paused"), reply("paused", ends: "completed"),
                failure("failed", #"{"service":"svc","error":"expired","message":"m","run":"failed"}"#),
                lifecycle("run.failed", "lifecycle"), reply("lifecycle", ends: "completed"),
                failure("quoted", #"{"service":"svc","error":"x","message":"\"run\":\"failed\""}"#),
                // A pause accepted while the answer was still uncommitted lands after it.
                reply("raced", ends: "completed"), lifecycle("run.paused", "raced"),
                // A second request with no causation id, sent into the run by a client.
                received("two"), reply("two", ends: "completed"),
                reply("again", ends: "completed"),
                lifecycle("run.cancelled", "cancelled"), failure("cancelled", #"{"error":"cancelled","run":"failed"}"#),
            ])
            #expect(try log.runStatus("done")?.state == .completed)
            #expect(try log.runStatus("broke")?.state == .failed)
            // An ask's reply carries no outcome.
            #expect(try log.runStatus("asked")?.state == .running)
            #expect(try log.runStatus("asked")?.openRequests == 1)
            // Paused, then its request answered: nothing is left to resume.
            #expect(try log.runStatus("paused")?.state == .completed)
            #expect(try log.runStatus("failed")?.state == .failed)
            #expect(try log.runStatus("lifecycle")?.state == .failed)
            // The member only in an escaped string value is not the router's.
            #expect(try log.runStatus("quoted")?.state == .running)
            #expect(try log.runStatus("raced")?.state == .completed)
            // One of two requests answered: the run goes on.
            #expect(try log.runStatus("two")?.state == .running)
            #expect(try log.runStatus("two")?.openRequests == 1)
            #expect(try log.runStatus("cancelled")?.state == .cancelled)

            try log.append([
                lifecycle("run.resumed", "paused"), lifecycle("run.resumed", "raced"), reply("two", ends: "completed"),
                received("again"),
            ])
            #expect(try log.runStatus("paused")?.state == .completed)
            #expect(try log.runStatus("raced")?.state == .completed)
            #expect(try log.runStatus("two")?.state == .completed)
            #expect(try log.runStatus("two")?.openRequests == 0)
            // A new request into a run that ended: running until it is answered.
            #expect(try log.runStatus("again")?.state == .running)
            try log.append(failure("again", #"{"error":"expired","run":"failed"}"#))
            #expect(try log.runStatus("again")?.state == .failed)

            // An agent's emitted events (they have a stream) of the router's types count nothing.
            try log.append(received("agent"))
            try log.append([
                NewEvent(type: "request.received", runID: "agent", streamID: "agent/x/agent"),
                NewEvent(type: "request.failed", runID: "agent", streamID: "agent/x/agent",
                         payload: Array(#"{"run":"failed"}"#.utf8)),
            ])
            #expect(try log.runStatus("agent")?.state == .running)
            #expect(try log.runStatus("agent")?.openRequests == 1)
            try log.append(reply("agent", ends: "completed"))
            #expect(try log.runStatus("agent")?.state == .completed)
        }
    }

    @Test func aRunStatusRowOfValueFormatOneIsRead() throws {
        // As version 1 of the projection wrote it: no count of open requests.
        var bytes: [UInt8] = [1, 6] + Array("paused".utf8)
        for value in [UInt64(3), 9, 4, 100, 200] { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        let row = try #require(RunStatus(runID: "run-1", encoded: bytes))
        #expect(row.state == .paused && row.openRequests == 0)
        #expect(row.firstPosition == 3 && row.lastPosition == 9 && row.eventCount == 4)
        #expect(row.firstTimestamp.nanosecondsSinceEpoch == 100 && row.lastTimestamp.nanosecondsSinceEpoch == 200)
        #expect(RunStatus(runID: "run-1", encoded: bytes + [0]) == nil)
        // Format 2 round-trips, its count included.
        var current = row
        current.openRequests = 7
        #expect(RunStatus(runID: "run-1", encoded: current.encoded()) == current)
        #expect(RunStatus(runID: "run-1", encoded: Array(current.encoded().dropLast())) == nil)
    }

    @Test func aNewProjectionOrVersionIsCaughtUpOnOpen() throws {
        try withTemporaryDirectory { dir in
            do {
                let log = try EventLog.open(at: dir)
                try Self.appendWorkload(to: log)
            }
            do {
                let log = try EventLog.open(at: dir, configuration: .init(projections: [TypeCountProjection(version: 1)]))
                let state = try log.projectionState(named: "type-count")
                #expect(state.checkpoint == 3000)
                let total = state.entries.reduce(0) { $0 + Int($1.value[0]) + Int($1.value[1]) << 8 }
                #expect(total == 3000)
                try log.append(jsonEvent("step"))
                #expect(try log.projectionState(named: "type-count").checkpoint == 3001)
            }
            // A version bump discards the old state and folds everything again with the new code.
            let log = try EventLog.open(at: dir, configuration: .init(projections: [TypeCountProjection(version: 2)]))
            let state = try log.projectionState(named: "type-count")
            #expect(state.checkpoint == 3001)
            #expect(state.entries.reduce(0) { $0 + Int($1.value[0]) + Int($1.value[1]) << 8 } == 6002)
        }
    }
}
