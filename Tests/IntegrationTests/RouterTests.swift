// SPDX-License-Identifier: Apache-2.0
import Foundation
import SwitchboardLog
import SwitchboardWire
import Testing
import TestSupport

/// A router process on loopback, its endpoints read from its first line of output.
struct RouterProcess {
    let process: ChildProcess
    let endpoint: String
    let events: String

    /// Waits for the router's first line without holding a cooperative thread.
    static func start(data: String, bind: String = "tcp://127.0.0.1:*", events: String = "tcp://127.0.0.1:*",
                      heartbeat: Int = 200, durability: String = "fsync") async throws -> RouterProcess {
        let process = try ChildProcess(productsDirectory.appendingPathComponent("switchboard"), [
            "router", "--data", data, "--bind", bind, "--events", events, "--heartbeat", String(heartbeat),
            "--durability", durability,
        ])
        let line = try #require(await process.waitForLine { $0.hasPrefix("router listening on ") },
                                "router did not start: \(process.standardError)")
        // "router listening on tcp://127.0.0.1:PORT, events on tcp://127.0.0.1:PORT"
        let parts = line.dropFirst("router listening on ".count).components(separatedBy: ", events on ")
        return RouterProcess(process: process, endpoint: parts[0], events: parts[1])
    }
}

func python() throws -> URL {
    try pythonWithZeroMQ.get()
}

func pythonPeer(_ arguments: [String]) throws -> ChildProcess {
    try ChildProcess(try python(), ["-u", mdpPeerScript] + arguments)
}

/// The JSON lines a Python client printed.
func replies(of client: ChildProcess) -> [(command: String, body: [String])] {
    client.lines.compactMap { line in
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let command = object["command"] as? String, let body = object["body"] as? [String]
        else { return nil }
        return (command, body)
    }
}

@Suite(.serialized) struct RouterTests {
    @Test func pythonPeersWrittenFromTheRFCInteroperateInBothFramings() async throws {
        try await withTemporaryDirectory { dir in
            let router = try await RouterProcess.start(data: dir)
            defer { router.process.kill() }
            let plain = try pythonPeer(["worker", router.endpoint, "echo", "--partials", "2", "--heartbeat-ms", "200"])
            let delimited = try pythonPeer(["worker", router.endpoint, "echo-d", "--delimited", "--heartbeat-ms", "200",
                                            "--reply-prefix", "d:"])
            defer {
                plain.kill()
                delimited.kill()
            }
            #expect(await plain.waitForLine { $0 == "ready" } != nil)
            #expect(await delimited.waitForLine { $0 == "ready" } != nil)

            for clientFraming in [[], ["--delimited"]] {
                let toPlain = try pythonPeer(["client", router.endpoint, "echo", "hello", "second"] + clientFraming)
                #expect(await toPlain.waitForExit(), "client hung")
                #expect(toPlain.exitStatus == 0, "\(toPlain.standardError)")
                #expect(replies(of: toPlain).map(\.command) == ["partial", "partial", "final"])
                #expect(replies(of: toPlain).last?.body == ["hello", "second"])
                #expect(replies(of: toPlain).first?.body == ["partial-0:hello", "second"])

                let toDelimited = try pythonPeer(["client", router.endpoint, "echo-d", "x", "--repeat", "3"] + clientFraming)
                #expect(await toDelimited.waitForExit())
                #expect(toDelimited.exitStatus == 0, "\(toDelimited.standardError)")
                #expect(replies(of: toDelimited).map(\.body) == Array(repeating: ["d:x"], count: 3))
            }
            for (service, status) in [("echo", "200"), ("echo-d", "200"), ("nobody", "404")] {
                let mmi = try pythonPeer(["client", router.endpoint, "mmi.service", service])
                #expect(await mmi.waitForExit())
                #expect(replies(of: mmi).map(\.body) == [[status]])
            }
            // An unknown service gets an error reply after the grace period, not silence.
            let unknown = try pythonPeer(["client", router.endpoint, "nobody", "x", "--timeout-ms", "8000"])
            #expect(await unknown.waitForExit())
            #expect(unknown.exitStatus == 0)
            #expect(replies(of: unknown).last?.body.first?.contains("unknown_service") == true)
        }
    }

    @Test func aWorkerKilledMidRequestIsReplacedAndTheLogShowsAttemptTwo() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/log"
            let counts = dir + "/stalled.txt"
            // The stalled worker expires 3 s after its last heartbeat, and the request then waits
            // the 2 s grace for a worker: the rescuer, a Python process started once the stall
            // began, has those 5 s to register, however loaded the machine.
            let router = try await RouterProcess.start(data: data, heartbeat: 1000)
            let stalled = try pythonPeer(["worker", router.endpoint, "jobs", "--heartbeat-ms", "1000",
                                          "--stall-after-requests", "1", "--count-file", counts])
            #expect(await stalled.waitForLine { $0 == "ready" } != nil)
            let client = try pythonPeer(["client", router.endpoint, "jobs", "job-1", "--timeout-ms", "20000"])
            var waited = 0
            while (try? String(contentsOfFile: counts, encoding: .utf8))?.contains("job-1") != true && waited < 2000 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            let rescuer = try pythonPeer(["worker", router.endpoint, "jobs", "--heartbeat-ms", "1000",
                                          "--reply-prefix", "rescued:"])
            #expect(await rescuer.waitForLine { $0 == "ready" } != nil)
            stalled.kill()
            #expect(await client.waitForExit())
            #expect(client.exitStatus == 0, "\(client.standardError)")
            #expect(replies(of: client).last?.body == ["rescued:job-1"])
            rescuer.kill()
            router.process.kill()

            let log = try EventLog.openReadOnly(at: data)
            let events = try log.events()
            let redelivery = try #require(events.first { $0.type == "request.redelivered" })
            let payload = String(decoding: redelivery.payload, as: UTF8.self)
            #expect(payload.contains("\"attempt\":2"))
            #expect(payload.contains("heartbeat expired"))
            #expect(events.filter { $0.type == "reply.final" }.map(\.causationID) == [redelivery.messageID])
            #expect(try log.verify().isSound)
        }
    }
}
