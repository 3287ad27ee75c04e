// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import SwitchboardWire
import Testing
import TestSupport

/// A million random and mutated frame sequences against a live router, with valid traffic in between.
@Suite(.serialized) struct RouterFuzzTests {
    struct Fuzzer: RandomNumberGenerator {
        var state: UInt64

        mutating func next() -> UInt64 {
            // SplitMix64: fast, and a failing seed can be replayed.
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func bytes(_ count: Int) -> [UInt8] {
            (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
        }

        static let templates: [[[UInt8]]] = [MDPFraming.plain, .delimited].flatMap { framing in
            [
                MDPCodec.clientRequest(service: "fuzz", body: [Array("x".utf8)], framing: framing),
                MDPCodec.clientRequest(service: "mmi.service", body: [Array("fuzz".utf8)], framing: framing),
                MDPCodec.clientRequest(service: "sb.events", body: [[0, 0, 0, 0, 0, 0, 0, 1]], framing: framing),
                MDPCodec.workerReady(service: "fuzz", framing: framing),
                MDPCodec.workerReady(service: "fuzz", metadata: WorkerMetadata(version: "1").encoded(), framing: framing),
                MDPCodec.workerReply(.workerPartial, client: [0, 1, 2, 3, 4], body: [[1]], framing: framing),
                MDPCodec.workerReply(.workerFinal, client: [0, 1, 2, 3, 4], body: [[1]], framing: framing),
                MDPCodec.workerSignal(.heartbeat, framing: framing),
                MDPCodec.workerSignal(.disconnect, framing: framing),
            ]
        }

        /// Random frames, or a valid message damaged in one or more ways.
        mutating func message() -> [[UInt8]] {
            if Int.random(in: 0..<4, using: &self) == 0 {
                return (0..<Int.random(in: 0...6, using: &self)).map { _ in bytes(Int.random(in: 0...24, using: &self)) }
            }
            var frames = Self.templates.randomElement(using: &self) ?? []
            for _ in 0..<Int.random(in: 1...3, using: &self) {
                switch Int.random(in: 0..<6, using: &self) {
                case 0 where !frames.isEmpty:
                    frames.remove(at: Int.random(in: 0..<frames.count, using: &self))
                case 1 where !frames.isEmpty:
                    let index = Int.random(in: 0..<frames.count, using: &self)
                    frames.insert(frames[index], at: index)
                case 2 where !frames.isEmpty:
                    let index = Int.random(in: 0..<frames.count, using: &self)
                    if !frames[index].isEmpty {
                        frames[index][Int.random(in: 0..<frames[index].count, using: &self)] ^= UInt8.random(in: 1...255, using: &self)
                    }
                case 3:
                    frames.insert(bytes(Int.random(in: 0...16, using: &self)), at: Int.random(in: 0...frames.count, using: &self))
                case 4 where !frames.isEmpty:
                    let index = Int.random(in: 0..<frames.count, using: &self)
                    frames[index] = Array(frames[index].prefix(Int.random(in: 0...frames[index].count, using: &self)))
                default:
                    break
                }
            }
            return frames
        }
    }

    @Test func aMillionBadMessagesNeitherCrashTheRouterNorDisturbValidTraffic() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/log"
            let router = try await RouterProcess.start(data: data, heartbeat: 500, durability: "none")
            defer { router.process.kill() }
            let service = "valid-\(UInt32.random(in: 0...UInt32.max))"
            let worker = try pythonPeer(["worker", router.endpoint, service, "--heartbeat-ms", "500",
                                         "--reply-prefix", "ok:"])
            defer { worker.kill() }
            #expect(await worker.waitForLine { $0 == "ready" } != nil)

            // A million sends keep a thread busy for a long while: one of its own, not the test pool's.
            let endpoint = router.endpoint
            let total = 1_000_000
            let (validAnswered, seed) = try await onThread { () throws -> (Int, UInt64) in
                let context = try ZMQContext()
                let fuzzers = try (0..<4).map { _ in
                    let socket = try ZMQSocket(context, type: .dealer)
                    try socket.connect(endpoint)
                    return socket
                }
                let client = try MDPClient(context: context, endpoint: endpoint)
                let seed = UInt64.random(in: 0...UInt64.max)
                var fuzzer = Fuzzer(state: seed)
                var validAnswered = 0
                var sent = 0
                while sent < total {
                    for socket in fuzzers {
                        let frames = fuzzer.message()
                        if !frames.isEmpty { try socket.send(frames) }
                        sent += 1
                        // Replies to fuzz sockets are never read; drop them so their queues stay small.
                        while try socket.receive(wait: false) != nil {}
                    }
                    if sent % 20_000 == 0 {
                        let replies = try client.request(service: service, body: [Array("ping-\(sent)".utf8)], timeout: 20_000)
                        #expect(replies.last == [Array("ok:ping-\(sent)".utf8)], "seed \(seed)")
                        validAnswered += 1
                    }
                }
                return (validAnswered, seed)
            }
            #expect(router.process.isRunning, "router died; seed \(seed): \(router.process.standardError)")
            #expect(validAnswered == total / 20_000)
            router.process.kill()
            #expect(try EventLog.openReadOnly(at: data).verify().isSound)
        }
    }
}
