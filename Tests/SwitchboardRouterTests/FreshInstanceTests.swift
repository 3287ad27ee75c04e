// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire
import Testing
import TestSupport

@testable import SwitchboardRouter

/// The router tells a host that an instance has no history (`state.empty`) only when nothing can
/// have given its stream an event: not the log, not a batch waiting for its commit, not a message
/// of the same key under way.
@Suite struct FreshInstanceTests {
    static let configuration = RouterConfiguration(endpoint: "inproc://x", heartbeatInterval: 1000, heartbeatLiveness: 3)
    static let now = BrokerStateMachine.Now(milliseconds: 1000, wall: Timestamp(nanosecondsSinceEpoch: 1_000_000_000))

    struct Driver {
        var machine = BrokerStateMachine(configuration: FreshInstanceTests.configuration, idPrefix: "m1.")
        var logged: [NewEvent] = []

        mutating func send(_ identity: String, _ frames: [[UInt8]]) -> BrokerStateMachine.Output {
            var output = BrokerStateMachine.Output()
            machine.receive(identity: Array(identity.utf8), frames: frames, now: FreshInstanceTests.now, into: &output)
            logged += output.events
            return output
        }

        /// The worker's envelope of what `output` dispatched to it.
        func dispatched(_ output: BrokerStateMachine.Output, to worker: String) throws -> Envelope {
            let frames = try #require((output.early + output.sends).first { $0.identity == Array(worker.utf8) }?.frames)
            return try Envelope(decoding: try #require(MDPCodec.decodeForWorker(frames).body.first))
        }

        mutating func ask(_ id: String, key: String, headers: [String: String] = [:]) throws -> BrokerStateMachine.Output {
            let envelope = Envelope(messageID: id, runID: "run-1", headers: headers.merging(["key": key]) { a, _ in a })
            return send("c", MDPCodec.clientRequest(service: "agent", body: [try envelope.encoded(), []]))
        }

        /// A final reply to `id` carrying one event for each stream.
        mutating func finish(_ id: String, emitting streams: [String]) throws -> BrokerStateMachine.Output {
            let events = try streams.enumerated().map { index, stream in
                try EmittedEvent(type: "noted", streamID: stream, messageID: "\(id)#\(index)", causationID: id,
                                 payload: Array("{}".utf8)).encoded()
            }
            let envelope = Envelope(messageID: id + "/final", runID: "run-1", causationID: id,
                                    headers: [EmittedEvent.headerName: String(streams.count)])
            return send("w1", MDPCodec.workerReply(.workerFinal, client: Array("c".utf8),
                                                   body: [try envelope.encoded(), []] + events))
        }
    }

    static func stream(_ key: String) -> String { StateService.instanceStream(type: "agent", key: key) }

    @Test func onlyKeysWithNoEventAnywhereAreSaidToBeFresh() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .none))
            var driver = Driver()
            try driver.machine.loadControlState(from: log, policy: nil)
            let metadata = WorkerMetadata(version: "1", capacity: 8).encoded()
            _ = driver.send("w1", MDPCodec.workerReady(service: "agent", metadata: metadata))
            for key in ["old", "older"] {
                try log.append(NewEvent(type: "noted", streamID: Self.stream(key), payload: Array("{}".utf8)))
            }

            // A new key whose stream is empty.
            let a = try driver.ask("a", key: "k")
            #expect(try driver.dispatched(a, to: "w1").headers[Envelope.emptyStateHeader] == "1")
            // The same key while its first message is under way: the host holds the instance.
            #expect(try driver.dispatched(try driver.ask("b", key: "k"), to: "w1").headers[Envelope.emptyStateHeader] == nil)
            // A key whose stream has a committed event.
            #expect(try driver.dispatched(try driver.ask("c", key: "old"), to: "w1").headers[Envelope.emptyStateHeader] == nil)

            // Events waiting for their commit count, and so do they once committed.
            _ = try driver.finish("a", emitting: [Self.stream("m"), Self.stream("n")])
            #expect(try driver.dispatched(try driver.ask("d", key: "m"), to: "w1").headers[Envelope.emptyStateHeader] == nil)
            try log.append(driver.logged)
            driver.machine.sealBatch()
            driver.machine.markCommitted(through: driver.machine.batch - 1)
            #expect(try driver.dispatched(try driver.ask("e", key: "n"), to: "w1").headers[Envelope.emptyStateHeader] == nil)

            // A client cannot claim it: its header is neither logged nor passed on.
            driver.logged = []
            let forged = try driver.ask("f", key: "older", headers: [Envelope.emptyStateHeader: "1"])
            #expect(try driver.dispatched(forged, to: "w1").headers[Envelope.emptyStateHeader] == nil)
            let received = try #require(driver.logged.first { $0.type == "request.received" })
            #expect(!received.payload.contains(Array(Envelope.emptyStateHeader.utf8)))
            #expect(try driver.dispatched(try driver.ask("g", key: "z"), to: "w1").headers[Envelope.emptyStateHeader] == "1")
        }
    }

    @Test func instanceStreamsFitTheLogWithTheirSnapshotSuffix() {
        #expect(StateService.instanceStream(type: "counter", key: "k") == "agent/counter/k")
        let longKey = String(repeating: "k", count: 300)
        let ascii = StateService.instanceStream(type: String(repeating: "t", count: 80), key: longKey)
        #expect(ascii.hasPrefix("agent/" + String(repeating: "t", count: 60) + "/#") && ascii.utf8.count == 100)
        // 60 characters of 25 bytes each: cut to whole characters within 200 bytes.
        let family = "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}"
        let wide = StateService.instanceStream(type: String(repeating: family, count: 60), key: longKey)
        #expect(StateService.snapshotStream(of: wide).utf8.count <= 255)
        #expect(wide.hasPrefix("agent/" + String(repeating: family, count: 8) + "/#"))
        #expect(wide != StateService.instanceStream(type: String(repeating: family, count: 60), key: longKey + "x"))
    }

    @Test func withoutALogNoKeyIsSaidToBeFresh() throws {
        var driver = Driver()
        _ = driver.send("w1", MDPCodec.workerReady(service: "agent", metadata: WorkerMetadata(version: "1").encoded()))
        #expect(try driver.dispatched(try driver.ask("a", key: "k"), to: "w1").headers[Envelope.emptyStateHeader] == nil)
    }
}

private extension [UInt8] {
    func contains(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}
