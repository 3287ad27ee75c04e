// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire
import Testing
import TestSupport

/// The router is SIGKILLed under load and restarted on the same data directory and port.
@Suite(.serialized) struct RouterRecoveryTests {
    /// A native client: fixed routing id, and an envelope whose message id it repeats when it asks again.
    final class LoadClient {
        let socket: ZMQSocket
        let name: String
        var index = 0
        var sentAt = Date()
        var asked: [String: Int] = [:]
        var answers: [String: [String]] = [:]

        init(context: ZMQContext, endpoint: String, name: String) throws {
            socket = try ZMQSocket(context, type: .dealer)
            try socket.setOption(.routingID, Array(name.utf8))
            try socket.connect(endpoint)
            self.name = name
        }

        var messageID: String { "\(name)-\(index)" }

        func send() throws {
            let envelope = try Envelope(messageID: messageID, runID: "run-\(name)").encoded()
            try socket.send(MDPCodec.clientRequest(service: "echo", body: [envelope, Array("\(name)#\(index)".utf8)]))
            asked[messageID, default: 0] += 1
            sentAt = Date()
        }

        /// Reads every waiting reply; returns false when the router answered something never asked.
        func receive(perClient: Int) throws {
            while let frames = try socket.receive(wait: false) {
                let reply = try MDPCodec.decodeClientReply(frames)
                guard reply.command == .final, reply.body.count == 2 else { continue }
                let envelope = try Envelope(decoding: reply.body[0])
                answers[envelope.causationID, default: []].append(String(decoding: reply.body[1], as: UTF8.self))
                if envelope.causationID == messageID {
                    index += 1
                    if index < perClient { try send() }
                }
            }
        }
    }

    @Test func everyAcceptedRequestIsAnsweredExactlyOnceAcrossARouterCrash() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/log"
            var router = try await RouterProcess.start(data: data)
            let endpoint = router.endpoint
            let workers = try (0..<2).map { _ in
                try pythonPeer(["worker", endpoint, "echo", "--heartbeat-ms", "200"])
            }
            defer { workers.forEach { $0.kill() } }
            for worker in workers { #expect(await worker.waitForLine { $0 == "ready" } != nil) }

            let context = try ZMQContext()
            let clients = try (0..<4).map { try LoadClient(context: context, endpoint: endpoint, name: "client\($0)") }
            let perClient = 100
            for client in clients { try client.send() }
            let start = Date()
            // Crash once this many requests were answered: mid-load, at a random point.
            let crashAfter = Int.random(in: 40...200)
            var crashed = false
            while clients.contains(where: { $0.index < perClient }) && Date().timeIntervalSince(start) < 90 {
                if !crashed && clients.reduce(0, { $0 + $1.index }) >= crashAfter {
                    router.process.kill()
                    router = try await RouterProcess.start(data: data, bind: endpoint)
                    crashed = true
                }
                // Polled without blocking, so the wait holds no cooperative thread.
                let readable = try ZMQSocket.poll(clients.map(\.socket), timeout: 0)
                if !readable.contains(true) { try await Task.sleep(for: .milliseconds(2)) }
                for (client, ready) in zip(clients, readable) where ready {
                    try client.receive(perClient: perClient)
                }
                // No answer in 2 s: ask again under the same message id, as a native client does.
                for client in clients where client.index < perClient && Date().timeIntervalSince(client.sentAt) > 2 {
                    try client.send()
                }
            }
            #expect(crashed)
            #expect(clients.allSatisfy { $0.index == perClient }, "clients did not finish")
            let drainUntil = Date().addingTimeInterval(1)
            while Date() < drainUntil {
                let readable = try ZMQSocket.poll(clients.map(\.socket), timeout: 0)
                if !readable.contains(true) { try await Task.sleep(for: .milliseconds(2)) }
                for (client, ready) in zip(clients, readable) where ready {
                    try client.receive(perClient: perClient)
                }
            }
            router.process.kill()

            let log = try EventLog.openReadOnly(at: data)
            #expect(try log.verify().isSound)
            let events = try log.events()
            #expect(events.filter { $0.type == "router.started" }.count == 2)
            // In the log: every accepted request once, with exactly one answer.
            let accepted = events.filter { $0.type == "request.received" }.map(\.messageID)
            #expect(Set(accepted).count == accepted.count, "a request was accepted twice")
            var answers: [String: Int] = [:]
            for event in events where event.type == "reply.final" || event.type == "request.failed" {
                answers[event.causationID, default: 0] += 1
            }
            #expect(accepted.allSatisfy { answers[$0] == 1 })
            #expect(accepted.count == 4 * perClient)
            // At the clients: every request answered with its own echo, and never more often than asked.
            for client in clients {
                for index in 0..<perClient {
                    let id = "\(client.name)-\(index)"
                    let got = client.answers[id] ?? []
                    #expect(!got.isEmpty && got.allSatisfy { $0 == "\(client.name)#\(index)" }, "\(id): \(got)")
                    #expect(got.count <= client.asked[id, default: 0], "\(id) answered \(got.count)× for \(client.asked[id, default: 0]) asks")
                }
            }
        }
    }

    @Test func anObserverStartingMidStreamSeesTheLogWithoutGapOrDuplicate() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/log"
            let router = try await RouterProcess.start(data: data, durability: "buffered")
            defer { router.process.kill() }
            let worker = try pythonPeer(["worker", router.endpoint, "echo", "--heartbeat-ms", "200"])
            defer { worker.kill() }
            #expect(await worker.waitForLine { $0 == "ready" } != nil)
            let load = try pythonPeer(["client", router.endpoint, "echo", "tick", "--repeat", "400"])
            try await Task.sleep(for: .milliseconds(300))

            // Start observing from position 1 while traffic flows; stop once the load is done. The
            // observer blocks on its socket: it runs on a thread of its own.
            let endpoints = (router: router.endpoint, events: router.events)
            let (order, seen) = try await onThread { () throws -> ([UInt64], [UInt64: String]) in
                let context = try ZMQContext()
                let observer = try EventObserver(context: context, router: endpoints.router, events: endpoints.events,
                                                 from: 1)
                var seen: [UInt64: String] = [:]
                var order: [UInt64] = []
                let deadline = Date().addingTimeInterval(60)
                // Stop once the load is over and everything the log holds has been seen.
                try observer.run(until: {
                    guard !load.isRunning else { return Date() > deadline }
                    let tail = (try? EventLog.openReadOnly(at: data).tail()) ?? 0
                    return observer.next > tail || Date() > deadline
                }) { position, json in
                    order.append(position)
                    seen[position] = json
                    return true
                }
                return (order, seen)
            }
            #expect(await load.waitForExit())
            #expect(load.exitStatus == 0)
            let logged = try EventLog.openReadOnly(at: data)
            let events = try logged.events()
            #expect(order == Array(1...UInt64(order.count)), "positions must arrive in order, gapless")
            #expect(order.count >= events.count - 2)
            for position in order {
                #expect(seen[position] == events[Int(position) - 1].cloudEventJSON(source: logged.cloudEventSource))
            }
        }
    }
}
