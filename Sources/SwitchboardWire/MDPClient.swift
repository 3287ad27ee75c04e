// SPDX-License-Identifier: Apache-2.0

/// A synchronous MDP/0.2 client on one DEALER socket; use it from one thread.
public final class MDPClient {
    public let socket: ZMQSocket
    public let framing: MDPFraming

    public init(context: ZMQContext, endpoint: String, framing: MDPFraming = .plain) throws {
        socket = try ZMQSocket(context, type: .dealer)
        try socket.connect(endpoint)
        self.framing = framing
    }

    /// Sends a REQUEST; without `wait`, returns false instead of waiting when ZeroMQ's queue
    /// towards the router is full (the router is away and many messages wait for it).
    @discardableResult
    public func send(service: String, body: [[UInt8]], wait: Bool = true) throws -> Bool {
        try socket.send(MDPCodec.clientRequest(service: service, body: body, framing: framing), wait: wait)
    }

    /// The next PARTIAL or FINAL, or nil after `timeout` milliseconds (-1: wait forever).
    public func receive(timeout: Int) throws -> (command: MDPCommand, service: String, body: [[UInt8]])? {
        guard try ZMQSocket.poll([socket], timeout: timeout)[0], let frames = try socket.receive(wait: false) else {
            return nil
        }
        return try MDPCodec.decodeClientReply(frames, framing: framing)
    }

    /// Sends a request and collects every reply up to the FINAL.
    /// - Throws: ``WireError/Code/timeout`` when `timeout` milliseconds pass without a reply.
    public func request(service: String, body: [[UInt8]], timeout: Int = 5000) throws -> [[[UInt8]]] {
        try send(service: service, body: body)
        var replies: [[[UInt8]]] = []
        while true {
            guard let reply = try receive(timeout: timeout) else {
                throw WireError(.timeout, "no reply from \(service) within \(timeout) ms")
            }
            replies.append(reply.body)
            if reply.command == .final { return replies }
        }
    }
}

@available(*, unavailable)
extension MDPClient: Sendable {}
