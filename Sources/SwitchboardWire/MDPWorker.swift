// SPDX-License-Identifier: Apache-2.0

/// A request the router handed to an ``MDPWorker``.
public struct MDPWorkerRequest: Sendable, Hashable {
    /// The client's address, to pass back with the reply.
    public var client: [UInt8]
    public var body: [[UInt8]]
}

/// A synchronous MDP/0.2 worker on one DEALER socket; use it from one thread.
///
/// It sends READY (with ``WorkerMetadata`` when given: a native worker), heartbeats while idle,
/// and reconnects with a fresh socket when the router goes silent for `liveness` intervals or
/// tells it to DISCONNECT (RFC 18), for instance after a router restart.
public final class MDPWorker {
    public let service: String
    public let framing: MDPFraming
    private let context: ZMQContext
    private let endpoint: String
    private let metadata: WorkerMetadata?
    private let heartbeatInterval: Int
    private let liveness: Int
    private var socket: ZMQSocket
    private var lastHeard: Int64 = 0
    private var lastSent: Int64 = 0
    /// How many times it registered (1 + reconnects).
    public private(set) var registrations = 0

    public init(context: ZMQContext, endpoint: String, service: String, framing: MDPFraming = .plain,
                metadata: WorkerMetadata? = nil, heartbeatInterval: Int = 2500, liveness: Int = 3) throws {
        self.context = context
        self.endpoint = endpoint
        self.service = service
        self.framing = framing
        self.metadata = metadata
        self.heartbeatInterval = heartbeatInterval
        self.liveness = liveness
        socket = try ZMQSocket(context, type: .dealer)
        try register(on: socket)
    }

    private func register(on socket: ZMQSocket) throws {
        try socket.connect(endpoint)
        try send(MDPCodec.workerReady(service: service, metadata: metadata?.encoded(), framing: framing))
        lastHeard = MonotonicTime.milliseconds()
        registrations += 1
    }

    private func reconnect() throws {
        socket = try ZMQSocket(context, type: .dealer)
        try register(on: socket)
    }

    private func send(_ frames: [[UInt8]]) throws {
        try socket.send(frames)
        lastSent = MonotonicTime.milliseconds()
    }

    /// The next request, or nil when `timeout` milliseconds pass without one (-1: wait forever).
    public func receive(timeout: Int) throws -> MDPWorkerRequest? {
        let deadline = timeout < 0 ? Int64.max : MonotonicTime.milliseconds() + Int64(timeout)
        while true {
            let now = MonotonicTime.milliseconds()
            if now - lastHeard > Int64(heartbeatInterval * liveness) {
                try reconnect()
                continue
            }
            if now - lastSent >= Int64(heartbeatInterval) {
                try send(MDPCodec.workerSignal(.heartbeat, framing: framing))
            }
            let wait = min(deadline, lastSent + Int64(heartbeatInterval)) - now
            if try ZMQSocket.poll([socket], timeout: Int(max(0, wait)))[0] {
                while let frames = try socket.receive(wait: false) {
                    lastHeard = MonotonicTime.milliseconds()
                    let message = try MDPCodec.decodeForWorker(frames, framing: framing)
                    switch message.command {
                    case .workerRequest:
                        return MDPWorkerRequest(client: message.client, body: message.body)
                    case .disconnect:
                        try reconnect()
                    default:
                        break  // HEARTBEAT: being heard is all it says.
                    }
                }
            }
            if MonotonicTime.milliseconds() >= deadline { return nil }
        }
    }

    /// Sends a PARTIAL (`final: false`) or the FINAL for `request`.
    public func reply(to request: MDPWorkerRequest, body: [[UInt8]], final: Bool = true) throws {
        try send(MDPCodec.workerReply(final ? .workerFinal : .workerPartial, client: request.client, body: body,
                                      framing: framing))
    }

    /// Tells the router this worker leaves.
    public func disconnect() throws {
        try send(MDPCodec.workerSignal(.disconnect, framing: framing))
    }
}

@available(*, unavailable)
extension MDPWorker: Sendable {}
