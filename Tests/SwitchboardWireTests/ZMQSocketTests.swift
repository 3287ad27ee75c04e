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
