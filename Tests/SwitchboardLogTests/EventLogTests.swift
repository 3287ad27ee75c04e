// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing

@testable import SwitchboardLog
import TestSupport

@Suite struct EventLogTests {
    @Test func appendedEventsReadBackWithEveryField() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            let first = NewEvent(
                type: "run.started", schemaVersion: 3, runID: "run-a", streamID: "agent/planner", messageID: "m1",
                causationID: "c0", timestamp: Timestamp(nanosecondsSinceEpoch: 1_700_000_000_000_000_001),
                payload: Array("{\"goal\":\"x\"}".utf8), payloadEncoding: .json, expectedVersion: .noStream)
            let second = NewEvent(
                type: "blob", runID: "", streamID: "", payload: [0, 1, 2, 255], payloadEncoding: .binary)
            let result = try log.append([first, second])
            #expect(result.firstPosition == 1 && result.lastPosition == 2)
            #expect(try log.tail() == 2)

            let events = try log.events()
            #expect(events.count == 2)
            let stored = try #require(events.first)
            #expect(stored.position == 1)
            #expect(stored.type == first.type && stored.schemaVersion == 3)
            #expect(stored.runID == "run-a" && stored.streamID == "agent/planner" && stored.streamVersion == 1)
            #expect(stored.messageID == "m1" && stored.causationID == "c0")
            #expect(stored.timestamp == first.timestamp)
            #expect(stored.payload == first.payload && stored.payloadEncoding == .json)
            #expect(stored.previousHash == .zero)
            #expect(events[1].payload == [0, 1, 2, 255] && events[1].payloadEncoding == .binary)
            #expect(events[1].streamVersion == 0)
            #expect(events[1].previousHash != .zero)
            #expect(try log.event(at: 2) == events[1])
            #expect(try log.event(at: 3) == nil)
        }
    }

    @Test func anEmptyBatchWritesNothing() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            #expect(try log.append([]).positions == nil)
            try log.append(jsonEvent("a"))
            let result = try log.append([])
            #expect(result.firstPosition == 2 && result.lastPosition == 1)
            #expect(try log.tail() == 1)
        }
    }

    @Test func eventsSurviveClosingAndReopening() throws {
        try withTemporaryDirectory { dir in
            let identifier: String
            do {
                let log = try EventLog.open(at: dir)
                try log.append((0..<10).map { jsonEvent("e\($0)") })
                identifier = log.identifier
            }
            let reopened = try EventLog.open(at: dir)
            #expect(reopened.identifier == identifier)
            #expect(try reopened.tail() == 10)
            try reopened.append(jsonEvent("e10"))
            #expect(try reopened.events().map(\.type) == (0...10).map { "e\($0)" })
            #expect(try reopened.verify().isSound)
        }
    }

    @Test func scanningViewsMatchDecodedEventsAndDieWithTheScan() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            try log.append((0..<50).map { NewEvent(type: "type-\($0)", schemaVersion: 2, runID: "r\($0 % 3)",
                                                   streamID: "s", messageID: "m\($0)", causationID: "c",
                                                   payload: Array("[\($0)]".utf8)) })
            let events = try log.events()
            var seen: [RecordedEvent] = []
            let count = try log.scan(from: 11) { view in
                #expect(view.type == events[Int(view.position) - 1].type)
                #expect(view.runID == events[Int(view.position) - 1].runID)
                #expect(view.payloadCount == events[Int(view.position) - 1].payload.count)
                #expect(view.withPayload { Array($0) } == events[Int(view.position) - 1].payload)
                seen.append(view.event())
                return view.position < 40
            }
            #expect(count == 30)
            #expect(seen == Array(events[10..<40]))
        }
    }

    @Test func readsByRangeRunAndStream() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            for index in 0..<30 {
                try log.append(jsonEvent("e\(index)", run: "run-\(index % 3)", stream: "s-\(index % 2)"))
            }
            #expect(try log.events(from: 5, limit: 3).map(\.position) == [5, 6, 7])
            #expect(try log.events(from: 29).map(\.position) == [29, 30])
            #expect(try log.events(from: 31).isEmpty)
            #expect(try log.events(inRun: "run-1").map(\.position) == Array(stride(from: 2, through: 29, by: 3)))
            #expect(try log.events(inRun: "run-1", from: 10, limit: 2).map(\.position) == [11, 14])
            #expect(try log.events(inRun: "run-").isEmpty)
            #expect(try log.events(inRun: "nope").isEmpty)
            // Ids longer than any stored one find nothing (and must not trap building a key).
            #expect(try log.events(inRun: String(repeating: "r", count: 300)).isEmpty)
            #expect(try log.streamVersion(String(repeating: "é", count: 200)) == 0)
            let stream = try log.events(inStream: "s-0")
            #expect(stream.map(\.position) == Array(stride(from: 1, through: 29, by: 2)))
            #expect(stream.map(\.streamVersion) == Array(1...15))
            #expect(try log.events(inStream: "s-1", fromVersion: 14).map(\.streamVersion) == [14, 15])
            #expect(try log.streamVersion("s-1") == 15)
            #expect(try log.streamVersion("s-") == 0)
        }
    }

    /// A run's events are read by stepping from one record to the next where they lie side by
    /// side, and by a lookup where other runs' events come between: both must give the run's events.
    @Test func aRunReadsWholeAcrossStretchesOfItsOwnAndOthersEvents() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            var mine: [UInt64] = []
            for index in 0..<200 {
                // Runs of 1 to 7 of its own events, then 0 to 3 of another's.
                let own = index % 7 + 1
                for step in 0..<own {
                    let result = try log.append(jsonEvent("own-\(index)-\(step)", run: "dense", stream: "s"))
                    mine.append(result.lastPosition)
                }
                for step in 0..<(index % 4) {
                    try log.append(jsonEvent("other-\(index)-\(step)", run: "sparse", stream: "t"))
                }
            }
            let events = try log.events(inRun: "dense")
            #expect(events.map(\.position) == mine)
            #expect(events.allSatisfy { $0.runID == "dense" && $0.type.hasPrefix("own-") })
            var scanned: [UInt64] = []
            try log.scan(inRun: "dense") { view in
                scanned.append(view.position)
                return true
            }
            #expect(scanned == mine)
            #expect(try log.events(inRun: "dense", from: mine[100], limit: 5).map(\.position) == Array(mine[100..<105]))
        }
    }

    @Test func positionsAreGaplessUnderConcurrentAppenders() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .none))
            let results = Mutex<[(thread: Int, result: AppendResult)]>([])
            DispatchQueue.concurrentPerform(iterations: 8) { thread in
                for batch in 0..<40 {
                    let events = (0..<3).map { NewEvent(type: "t", runID: "run-\(thread)", streamID: "s-\(thread)",
                                                        messageID: "\(thread).\(batch).\($0)") }
                    let result = try! log.append(events)
                    results.withLock { $0.append((thread, result)) }
                }
            }
            let all = try log.events()
            #expect(all.map(\.position) == Array(1...960))
            #expect(try log.tail() == 960)
            for (thread, result) in results.withLock({ $0 }) {
                let batch = all[Int(result.firstPosition - 1)...Int(result.lastPosition - 1)]
                #expect(batch.count == 3)
                #expect(batch.allSatisfy { $0.runID == "run-\(thread)" })
                #expect(batch.map { $0.messageID.split(separator: ".").last } == ["0", "1", "2"])
            }
            for thread in 0..<8 {
                #expect(try log.events(inStream: "s-\(thread)").map(\.streamVersion) == Array(1...120))
            }
            #expect(try log.verify().isSound)
        }
    }

    @Test func aConflictingExpectedVersionFailsAndWritesNothing() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            try log.append(NewEvent(type: "a", streamID: "order-1", expectedVersion: .noStream))
            try log.append(NewEvent(type: "b", streamID: "order-1", expectedVersion: .exact(1)))
            let before = try log.projectionState(named: "run-status")

            do {
                try log.append([
                    NewEvent(type: "fine", runID: "r", streamID: "other"),
                    NewEvent(type: "stale", runID: "r", streamID: "order-1", expectedVersion: .exact(1)),
                ])
                Issue.record("the conflicting append succeeded")
            } catch let error as EventLogError {
                #expect(error.code == .versionConflict)
                #expect(error.message.contains("order-1") && error.message.contains("version 2"))
            }
            // Within one batch the earlier events count.
            #expect(throws: EventLogError.self) {
                try log.append([NewEvent(type: "c", streamID: "order-1", expectedVersion: .exact(2)),
                                NewEvent(type: "d", streamID: "order-1", expectedVersion: .exact(2))])
            }
            #expect(try log.tail() == 2)
            #expect(try log.streamVersion("other") == 0)
            #expect(try log.events(inRun: "r").isEmpty)
            #expect(try log.projectionState(named: "run-status") == before)
            try log.append([NewEvent(type: "c", streamID: "order-1", expectedVersion: .exact(2)),
                            NewEvent(type: "d", streamID: "order-1", expectedVersion: .exact(3))])
            #expect(try log.streamVersion("order-1") == 4)
            #expect(try log.verify().isSound)
        }
    }

    /// The router's writer commits the batches queued behind a commit together, without joining them.
    @Test func batchesAppendInOrderInOneTransaction() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            let result = try log.append(batches: [
                [jsonEvent("a", run: "r", stream: "s"), jsonEvent("b", run: "q", stream: "s")],
                [],
                [jsonEvent("c", run: "r", stream: "s")],
            ])
            #expect(result.firstPosition == 1 && result.lastPosition == 3)
            #expect(result.events.map(\.type) == ["a", "b", "c"])
            #expect(result.events.map(\.streamVersion) == [1, 2, 3])
            #expect(try log.events(inRun: "r").map(\.position) == [1, 3])
            #expect(try log.append(batches: [[], []]).positions == nil)
            // A conflict in a later batch fails the earlier ones too.
            #expect(throws: EventLogError.self) {
                try log.append(batches: [
                    [jsonEvent("d", run: "r", stream: "t")],
                    [NewEvent(type: "e", streamID: "s", expectedVersion: .exact(1))],
                ])
            }
            #expect(try log.tail() == 3)
            #expect(try log.streamVersion("t") == 0)
            #expect(try log.verify().isSound)
        }
    }

    @Test func invalidEventsAreRefusedWithClearErrors() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(maximumPayloadSize: 100))
            let cases: [(NewEvent, String)] = [
                (NewEvent(type: ""), "type must not be empty"),
                (NewEvent(type: "t", payload: [UInt8](repeating: 1, count: 101)), "exceeds the limit of 100"),
                (NewEvent(type: "t", messageID: String(repeating: "m", count: 300)), "message id is 300 bytes"),
                (NewEvent(type: "t", expectedVersion: .exact(1)), "needs a stream id"),
            ]
            for (event, message) in cases {
                do {
                    try log.append([jsonEvent("ok"), event])
                    Issue.record("accepted \(message)")
                } catch let error as EventLogError {
                    #expect(error.code == .invalidEvent)
                    #expect(error.message.contains(message))
                }
            }
            #expect(try log.tail() == 0)
        }
    }

    @Test func aLogOpensOncePerProcessAndOnceForWriting() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            #expect { try EventLog.open(at: dir) } throws: { ($0 as? EventLogError)?.code == .alreadyOpen }
            #expect { try EventLog.openReadOnly(at: dir + "/") } throws: { ($0 as? EventLogError)?.code == .alreadyOpen }
            _ = log
        }
        try withTemporaryDirectory { dir in
            #expect { try EventLog.openReadOnly(at: dir) } throws: { ($0 as? EventLogError)?.code == .notFound }
            _ = try EventLog.open(at: dir)
            let reader = try EventLog.openReadOnly(at: dir)
            #expect { try reader.append(jsonEvent("x")) } throws: { ($0 as? EventLogError)?.code == .readOnly }
        }
    }

    @Test func openAndCloseManyTimesLeaksNothing() throws {
        try withTemporaryDirectory { dir in
            for index in 0..<200 {
                let log = try EventLog.open(at: dir)
                try log.append(jsonEvent("e\(index)"))
            }
            let reader = try EventLog.openReadOnly(at: dir)
            #expect(try reader.tail() == 200)
            // Only descriptors on this log's files: other tests run in parallel in this process and
            // hold sockets and pipes of their own. A leak per open would leave about 200 here.
            let directory = URL(fileURLWithPath: dir).resolvingSymlinksInPath().path + "/"
            let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").filter { fd in
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"))?
                    .hasPrefix(directory) == true
            }
            // The open reader holds the log's files; the 200 closed handles hold none.
            #expect(descriptors.count > 0 && descriptors.count < 10, "\(descriptors.count) descriptors open on the log")
        }
    }

    @Test func theMapGrowsWellPastItsInitialSize() throws {
        try withTemporaryDirectory { dir in
            let initial = 1 << 20
            let log = try EventLog.open(at: dir, configuration: .init(durability: .buffered, initialMapSize: initial))
            let payload = [UInt8](repeating: 7, count: 4096)
            for batch in 0..<40 {
                try log.append((0..<100).map { NewEvent(type: "big", runID: "run-\(batch)", streamID: "s-\($0)",
                                                         payload: payload, payloadEncoding: .binary) })
            }
            let stats = try log.statistics()
            #expect(stats.eventCount == 4000)
            #expect(stats.mapSize >= 16 * initial)
            #expect(stats.fileSize > 16 * initial)
            #expect(try log.verify().isSound)
            #expect(try log.event(at: 3999)?.payload == payload)
        }
    }

    /// The recorded events an append returns are built before its transaction, which runs again
    /// when the map must grow: what they say must be what was stored, and the caller's events stay
    /// as they were (their fields move only out of arrays the log was handed alone).
    @Test func anAppendThatGrowsTheMapReturnsTheEventsAsStored() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .buffered, initialMapSize: 1 << 20))
            let payload = [UInt8](repeating: 9, count: 8192)
            let events = (0..<400).map {
                NewEvent(type: "big", runID: "run-\($0 % 7)", streamID: "stream-\($0 % 3)", messageID: "message-\($0)",
                         causationID: "cause-\($0)", payload: payload, payloadEncoding: .binary)
            }
            let result = try log.append(events)
            #expect(try log.statistics().mapSize > 1 << 20)
            #expect(result.firstPosition == 1 && result.lastPosition == 400)
            #expect(events.allSatisfy { (event: NewEvent) -> Bool in event.payload == payload })
            #expect(events.map(\.messageID) == (0..<400).map { (index: Int) -> String in "message-\(index)" })
            let stored = try log.events(from: 1)
            // Positions only on failure: the events' payloads would fill the output.
            #expect(stored.count == result.events.count)
            let mismatched = zip(stored, result.events).filter { $0.0 != $0.1 }.map(\.0.position)
            #expect(mismatched.isEmpty, "returned events differing from the stored ones: \(mismatched.prefix(5))")
            #expect(stored.map(\.messageID) == events.map(\.messageID))
            let versions: [UInt64] = (0..<400).map { (index: Int) -> UInt64 in UInt64(index / 3 + 1) }
            #expect(stored.map(\.streamVersion) == versions)
            #expect(try log.verify().isSound)
        }
    }

    @Test func statisticsCountEventsAndRuns() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            try log.append((0..<12).map { jsonEvent("e", run: "run-\($0 % 4)", stream: $0 < 6 ? "s" : "") })
            try log.append(NewEvent(type: "no-run"))
            let stats = try log.statistics()
            #expect(stats.eventCount == 13 && stats.lastPosition == 13)
            #expect(stats.runCount == 4)
            #expect(stats.indexEntries == 12 + 6)
            #expect(stats.identifier == log.identifier && stats.identifier.count == 32)
        }
    }

    @Test func cloudEventsAreValidJSONWithTheEventsFields() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir)
            try log.append([
                NewEvent(type: "tool.called", runID: "run-\"q\"", streamID: "tools", messageID: "m9",
                         causationID: "m8", payload: Array("{\"args\":[1,\"é\"]}".utf8)),
                NewEvent(type: "blob", payload: [0xDE, 0xAD], payloadEncoding: .binary),
                NewEvent(type: "liar", payload: Array("{not json".utf8), payloadEncoding: .json),
                NewEvent(type: "pretty", payload: Array("{\n  \"a b\" : [1, 2],\n  \"c\":\"x\\\" y\"\n}\n".utf8)),
            ])
            let events = try log.events()
            let objects = try events.map { event in
                let json = event.cloudEventJSON(source: log.cloudEventSource)
                return try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            }
            #expect(objects[0]["specversion"] as? String == "1.0")
            #expect(objects[0]["id"] as? String == "1")
            #expect(objects[0]["source"] as? String == "urn:switchboard:log:\(log.identifier)")
            #expect(objects[0]["type"] as? String == "tool.called")
            #expect(objects[0]["subject"] as? String == "tools")
            #expect(objects[0]["sbrun"] as? String == "run-\"q\"")
            #expect(objects[0]["sbmessage"] as? String == "m9")
            #expect(objects[0]["sbcausation"] as? String == "m8")
            #expect(objects[0]["sbposition"] as? String == "1")
            #expect(objects[0]["time"] as? String == events[0].timestamp.description)
            #expect(((objects[0]["data"] as? [String: Any])?["args"] as? [Any])?.count == 2)
            #expect(objects[1]["data_base64"] as? String == "3q0=")
            #expect(objects[1]["datacontenttype"] as? String == "application/octet-stream")
            let pretty = events[3].cloudEventJSON(source: log.cloudEventSource)
            #expect(!pretty.contains("\n"))
            #expect(pretty.hasSuffix(#""data":{"a b":[1,2],"c":"x\" y"}}"#))
            #expect(objects[2]["data"] == nil && objects[2]["data_base64"] as? String == Data("{not json".utf8).base64EncodedString())
        }
    }
}
