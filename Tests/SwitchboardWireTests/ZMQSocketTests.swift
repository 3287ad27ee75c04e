// SPDX-License-Identifier: Apache-2.0
import SwitchboardWire
import Testing

@Suite struct ZMQSocketTests {
    @Test(arguments: ["inproc://socket-test-\(UInt64.random(in: 0...UInt64.max))", "tcp://127.0.0.1:*"])
    func routerAndDealerExchangeMultipartMessages(endpoint: String) throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.bind(endpoint)
        let bound = router.lastEndpoint
        #expect(endpoint.hasPrefix("tcp") ? bound.hasPrefix("tcp://127.0.0.1:") && !bound.hasSuffix(":*") : bound == endpoint)
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setOption(.routingID, Array("peer-1".utf8))
        try dealer.connect(bound)

        try dealer.send([[1, 2, 3], [], Array(repeating: 7, count: 100_000)])
        #expect(try ZMQSocket.poll([router], timeout: 5000) == [true])
        let received = try #require(try router.receive())
        #expect(received.count == 4)
        #expect(received[0] == Array("peer-1".utf8))
        #expect(received[1] == [1, 2, 3] && received[2].isEmpty && received[3].count == 100_000)

        try router.send([received[0], Array("back".utf8)])
        #expect(try dealer.receive() == [Array("back".utf8)])
        #expect(try dealer.receive(wait: false) == nil)
    }

    /// Frames handed out from the shared ones (MDP headers, single bytes) hold exactly what was sent.
    @Test func sharedAndOneByteFramesArriveAsSent() throws {
        let context = try ZMQContext()
        let endpoint = "inproc://shared-frames-\(UInt64.random(in: 0...UInt64.max))"
        let router = try ZMQSocket(context, type: .router)
        router.sharedFrames = MDP.headers
        try router.bind(endpoint)
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setOption(.routingID, Array("peer-2".utf8))
        try dealer.connect(endpoint)
        let nearMiss = Array("MDPC03".utf8)
        let message = [MDP.clientHeader, nearMiss, MDP.workerHeader, Array("MDPW0".utf8)] + (0...255).map { [UInt8($0)] }
        try dealer.send(message)
        #expect(try ZMQSocket.poll([router], timeout: 5000) == [true])
        let received = try #require(try router.receive())
        #expect(received == [Array("peer-2".utf8)] + message)
        // The peer address first, then the rest, without building one array: the same message.
        #expect(try router.send(received[0], Array(received.dropFirst())))
        #expect(try ZMQSocket.poll([dealer], timeout: 5000) == [true])
        #expect(try dealer.receive() == message)

        // The address apart: as `receive`, split after the first frame; nil when nothing waits.
        #expect(try router.receiveRouted(wait: false) == nil)
        try dealer.send(message)
        try dealer.send([Array("single".utf8)])
        #expect(try ZMQSocket.poll([router], timeout: 5000) == [true])
        let routed = try #require(try router.receiveRouted())
        #expect(routed.identity == Array("peer-2".utf8) && routed.frames == message)
        let single = try #require(try router.receiveRouted())
        #expect(single.identity == Array("peer-2".utf8) && single.frames == [Array("single".utf8)])
        #expect(try router.receiveRouted(wait: false) == nil)
    }

    /// Short frames seen again (peer addresses, service names) are handed out as the array kept
    /// from the last time; whatever shares a slot, every frame holds exactly what was sent.
    @Test func shortFramesSeenAgainAreSharedAndArriveAsSent() throws {
        let context = try ZMQContext()
        let endpoint = "inproc://short-frames-\(UInt64.random(in: 0...UInt64.max))"
        let router = try ZMQSocket(context, type: .router)
        try router.bind(endpoint)
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setOption(.routingID, Array("peer-3".utf8))
        try dealer.connect(endpoint)
        func exchange(_ frames: [[UInt8]]) throws -> (identity: [UInt8], frames: [[UInt8]]) {
            try dealer.send(frames)
            #expect(try ZMQSocket.poll([router], timeout: 5000) == [true])
            return try #require(try router.receiveRouted())
        }
        func storage(_ frame: [UInt8]) -> UnsafeRawPointer? { frame.withUnsafeBytes { $0.baseAddress } }
        let first = try exchange([Array("echo".utf8), Array(repeating: 7, count: 33)])
        let second = try exchange([Array("echo".utf8), Array(repeating: 7, count: 33)])
        #expect(second.identity == Array("peer-3".utf8) && second.frames[0] == Array("echo".utf8))
        #expect(storage(second.identity) == storage(first.identity))
        #expect(storage(second.frames[0]) == storage(first.frames[0]))
        // Past the limit for short frames: a frame of its own every time.
        #expect(second.frames[1] == first.frames[1] && storage(second.frames[1]) != storage(first.frames[1]))

        // Many more distinct short frames than slots, each twice and of every length up to the
        // limit: slots are taken over, and no frame comes back with another's bytes.
        let sent = (0..<500).map { index in (0..<(2 + index % 31)).map { UInt8(truncatingIfNeeded: index &* 31 &+ $0) } }
        for round in 0..<2 {
            for frame in sent {
                let received = try exchange([frame])
                #expect(received.frames == [frame], "round \(round)")
            }
        }
    }

    /// A poller kept between polls: readiness is that of the last poll, a socket put in place of
    /// another is the one polled, and sockets past `count` are left out.
    @Test func aPollerKeptBetweenPollsSeesEachSocketItHolds() throws {
        let context = try ZMQContext()
        let endpoint = "inproc://poller-\(UInt64.random(in: 0...UInt64.max))"
        let receivers = try (0..<3).map { index in
            let receiver = try ZMQSocket(context, type: .pair)
            try receiver.bind("\(endpoint)-\(index)")
            return receiver
        }
        let senders = try (0..<3).map { index in
            let sender = try ZMQSocket(context, type: .pair)
            try sender.connect("\(endpoint)-\(index)")
            return sender
        }
        var poller = ZMQPoller([receivers[0], receivers[1]])
        #expect(poller.count == 2)
        try poller.poll(timeout: 0)
        #expect(!poller.isReadable(0) && !poller.isReadable(1))

        try senders[1].send([[1]])
        try poller.poll(timeout: 5000)
        #expect(!poller.isReadable(0) && poller.isReadable(1))
        // Left out of the poll: read as not readable, though a message waits.
        try poller.poll(timeout: 0, count: 1)
        #expect(!poller.isReadable(0) && !poller.isReadable(1))
        #expect(try receivers[1].receive() == [[1]])

        // The third socket in place of the second: its message is seen, the second's is not.
        try senders[2].send([[2]])
        try senders[1].send([[3]])
        poller.set(1, receivers[2])
        try poller.poll(timeout: 5000)
        #expect(poller.isReadable(1))
        #expect(try receivers[2].receive() == [[2]])
        try poller.poll(timeout: 0)
        #expect(!poller.isReadable(1))
        #expect(try ZMQSocket.poll(receivers, timeout: 0) == [false, true, false])
    }

    @Test func socketsAndContextsCloseCleanlyInALoop() throws {
        for index in 0..<200 {
            let context = try ZMQContext()
            let socket = try ZMQSocket(context, type: .router)
            try socket.bind("inproc://loop-\(index)")
            let peer = try ZMQSocket(context, type: .dealer)
            try peer.connect("inproc://loop-\(index)")
            try peer.send([[1]])
        }
    }

    @Test func bindingABadEndpointIsAClearError() throws {
        let socket = try ZMQSocket(try ZMQContext(), type: .router)
        #expect { try socket.bind("nonsense://x") } throws: { ($0 as? WireError)?.message.contains("bind nonsense://x") == true }
    }
}
