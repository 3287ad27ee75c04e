// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire
import Testing
import TestSupport

/// The router is SIGKILLed under load and restarted on the same data directory and port.
@Suite(.serialized) struct RouterRecoveryTests {
    /// One client with a fixed routing id, so the restarted router's replies still reach it.
    final class LoadClient {
        let socket: ZMQSocket
        let name: String
        var index = 0
        var attempt = 0
        var sentAt = Date()
        var finals: [String] = []
        var errors = 0

        init(context: ZMQContext, endpoint: String, name: String) throws {
            socket = try ZMQSocket(context, type: .dealer)
            try socket.setOption(.routingID, Array(name.utf8))
            try socket.connect(endpoint)
            self.name = name
        }

        var body: String { "\(name)#\(index).\(attempt)" }

        func send() throws {
            try socket.send(MDPCodec.clientRequest(service: "echo", body: [Array(body.utf8)]))
            sentAt = Date()
        }
    }

    @Test func everyAcceptedRequestIsAnsweredExactlyOnceAcrossARouterCrash() throws {
        try withTemporaryDirectory { dir in
            let data = dir + "/log"
            var router = try RouterProcess.start(data: data)
            let endpoint = router.endpoint
            let workers = try (0..<2).map { _ in
                try pythonPeer(["worker", endpoint, "echo", "--heartbeat-ms", "200"])
            }
            defer { workers.forEach { $0.kill() } }
            for worker in workers { #expect(worker.waitForLine { $0 == "ready" } != nil) }

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
                    router = try RouterProcess.start(data: data, bind: endpoint)
                    crashed = true
                }
                let readable = try ZMQSocket.poll(clients.map(\.socket), timeout: 50)
                for (client, ready) in zip(clients, readable) where ready {
                    while let frames = try client.socket.receive(wait: false) {
                        let reply = try MDPCodec.decodeClientReply(frames)
                        guard reply.command == .final else { continue }
                        let body = String(decoding: reply.body.first ?? [], as: UTF8.self)
                        if body.hasPrefix("{\"error\"") {
                            // Answered with an error (no worker yet after the restart): ask again.
                            client.errors += 1
                            client.attempt += 1
                            try client.send()
                            continue
                        }
                        client.finals.append(body)
                        if body == client.body {
                            client.index += 1
                            client.attempt = 0
                            if client.index < perClient { try client.send() }
                        }
                    }
                }
                // A plain MDP client cannot know whether an unanswered request was committed:
                // after 4 s it asks again, under a new body, as a new request.
                for client in clients where client.index < perClient && Date().timeIntervalSince(client.sentAt) > 4 {
                    client.attempt += 1
                    try client.send()
                }
            }
            #expect(crashed)
            #expect(clients.allSatisfy { $0.index == perClient }, "clients did not finish")
            // Late answers to requests that were retried would arrive now.
            let drainUntil = Date().addingTimeInterval(1.5)
            while Date() < drainUntil {
                for (client, ready) in zip(clients, try ZMQSocket.poll(clients.map(\.socket), timeout: 50)) where ready {
                    while let frames = try client.socket.receive(wait: false) {
                        client.finals.append(String(decoding: try MDPCodec.decodeClientReply(frames).body.first ?? [], as: UTF8.self))
                    }
                }
            }
            router.process.kill()

            let log = try EventLog.openReadOnly(at: data)
            #expect(try log.verify().isSound)
            let events = try log.events()
            #expect(events.filter { $0.type == "router.started" }.count == 2)
            let accepted = events.filter { $0.type == "request.received" && !$0.payload.isEmpty }
            var finalsPerRequest: [String: Int] = [:]
            for event in events where event.type == "reply.final" || event.type == "request.failed" {
                finalsPerRequest[event.causationID, default: 0] += 1
            }
            // In the log: every accepted request has exactly one answer.
            for request in accepted {
                #expect(finalsPerRequest[request.messageID] == 1, "request \(request.messageID)")
            }
            // At the clients: each answer arrived exactly once, and only for accepted requests.
            let answered = Set(events.filter { $0.type == "reply.final" }.map(\.causationID))
            let answeredBodies = accepted.filter { answered.contains($0.messageID) }.compactMap { body(of: $0) }
            let received = clients.flatMap(\.finals)
            #expect(Set(received).count == received.count, "a client got a FINAL twice")
            #expect(Set(received) == Set(answeredBodies))
            #expect(received.count >= 4 * perClient)
            #expect(clients.reduce(0) { $0 + $1.errors } == events.filter { $0.type == "request.failed" }.count)
        }
    }

    /// The first body frame of a `request.received` event.
    private func body(of event: RecordedEvent) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(event.payload)) as? [String: Any],
              let frames = object["body"] as? [String], let first = frames.first,
              let data = Data(base64Encoded: first)
        else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    @Test func anObserverStartingMidStreamSeesTheLogWithoutGapOrDuplicate() throws {
        try withTemporaryDirectory { dir in
            let data = dir + "/log"
            let router = try RouterProcess.start(data: data, durability: "buffered")
            defer { router.process.kill() }
            let worker = try pythonPeer(["worker", router.endpoint, "echo", "--heartbeat-ms", "200"])
            defer { worker.kill() }
            #expect(worker.waitForLine { $0 == "ready" } != nil)
            let load = try pythonPeer(["client", router.endpoint, "echo", "tick", "--repeat", "400"])
            usleep(300_000)

            // Start observing from position 1 while traffic flows; stop once the load is done.
            let context = try ZMQContext()
            let observer = try EventObserver(context: context, router: router.endpoint, events: router.events, from: 1)
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
            #expect(load.waitForExit())
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
