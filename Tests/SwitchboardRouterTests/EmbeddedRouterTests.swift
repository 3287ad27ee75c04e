// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire
import Testing
import TestSupport

/// Router, Swift MDP worker and client in one process over `inproc://` (embedded mode).
@Suite struct EmbeddedRouterTests {
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    @Test func swiftWorkerAndClientTalkThroughAnInProcessRouter() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .none))
            let context = try ZMQContext()
            let endpoint = "inproc://embedded-\(UInt64.random(in: 0...UInt64.max))"
            let router = Router(configuration: RouterConfiguration(endpoint: endpoint, heartbeatInterval: 100),
                                log: log, context: context)
            let listening = DispatchSemaphore(value: 0)
            let stopped = DispatchSemaphore(value: 0)
            let routerThread = Thread {
                do {
                    try router.run(onListening: { _, _ in listening.signal() })
                } catch {
                    Issue.record("router failed: \(error)")
                    listening.signal()
                }
                stopped.signal()
            }
            routerThread.start()
            #expect(listening.wait(timeout: .now() + 10) == .success)

            let done = Flag()
            let workerStopped = DispatchSemaphore(value: 0)
            let workerThread = Thread {
                defer { workerStopped.signal() }
                do {
                    let worker = try MDPWorker(context: context, endpoint: endpoint, service: "upper",
                                               metadata: WorkerMetadata(version: "2.0", capacity: 1),
                                               heartbeatInterval: 100)
                    while !done.value.load(ordering: .relaxed) {
                        guard let request = try worker.receive(timeout: 50) else { continue }
                        // A native worker gets an envelope first: answer with one naming the request.
                        let envelope = try Envelope(decoding: request.body[0])
                        try worker.reply(to: request, body: [Array("partial".utf8)], final: false)
                        let reply = try Envelope(messageID: envelope.messageID + "/r", runID: envelope.runID,
                                                 causationID: envelope.messageID).encoded()
                        let text = String(decoding: request.body[1], as: UTF8.self).uppercased()
                        try worker.reply(to: request, body: [reply, Array(text.utf8)])
                    }
                    try worker.disconnect()
                } catch {
                    Issue.record("worker failed: \(error)")
                }
            }
            workerThread.start()

            // Garbage first: dropped and counted, and the router serves on.
            let stranger = try ZMQSocket(context, type: .dealer)
            try stranger.connect(endpoint)
            try stranger.send([Array("MDPC02".utf8), [9]])
            try stranger.send([[1, 2, 3]])

            let client = try MDPClient(context: context, endpoint: endpoint)
            for word in ["alpha", "beta", "gamma"] {
                let replies = try client.request(service: "upper", body: [Array(word.utf8)], timeout: 10_000)
                #expect(replies.count == 2)
                #expect(replies.last == [Array(word.uppercased().utf8)])
            }
            #expect(router.statistics.invalidMessages == 2)
            done.value.store(true, ordering: .relaxed)
            #expect(workerStopped.wait(timeout: .now() + 10) == .success)
            router.stop()
            #expect(stopped.wait(timeout: .now() + 10) == .success)

            let events = try log.events()
            let joined = try #require(events.first { $0.type == "worker.joined" })
            #expect(String(decoding: joined.payload, as: UTF8.self).contains("\"version\":\"2.0\""))
            #expect(events.filter { $0.type == "reply.final" }.count == 3)
            #expect(events.filter { $0.type == "reply.partial" }.count == 3)
            #expect(try log.verify().isSound)
        }
    }
}
