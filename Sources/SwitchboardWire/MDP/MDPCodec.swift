// SPDX-License-Identifier: Apache-2.0

/// Encodes and strictly decodes MDP/0.2 messages in both framings; pure, no I/O.
public enum MDPCodec {
    // MARK: - Router side

    /// Decodes what a peer sent (frames after the ROUTER identity), or says why it is invalid.
    public static func decodeFromPeer(_ frames: [[UInt8]]) -> Result<(MDPPeerMessage, MDPFraming), WireError> {
        var rest = frames[...]
        var framing = MDPFraming.plain
        if rest.first?.isEmpty == true {
            framing = .delimited
            rest = rest.dropFirst()
        }
        guard let header = rest.popFirst() else { return malformed("no protocol header") }
        guard let commandFrame = rest.popFirst(), commandFrame.count == 1 else {
            return malformed("the command frame must be one byte")
        }
        let command = MDPCommand(rawValue: commandFrame[0])
        if header == MDP.clientHeader {
            guard command == .request else { return malformed("clients may only send REQUEST (0x01)") }
            guard let service = rest.popFirst() else { return malformed("REQUEST without a service frame") }
            return validService(service).map { (.clientRequest(service: $0, body: Array(rest)), framing) }
        }
        guard header == MDP.workerHeader else { return malformed("unknown protocol header") }
        switch command {
        case .ready:
            guard let service = rest.popFirst() else { return malformed("READY without a service frame") }
            guard rest.count <= 1 else { return malformed("READY has more than one metadata frame") }
            return validService(service).map { (.workerReady(service: $0, metadata: rest.first), framing) }
        case .workerPartial, .workerFinal:
            guard let client = rest.popFirst(), !client.isEmpty else { return malformed("reply without a client address") }
            guard rest.popFirst()?.isEmpty == true else { return malformed("reply without the empty frame after the client address") }
            let body = Array(rest)
            return .success((command == .workerFinal ? .workerFinal(client: client, body: body)
                                                     : .workerPartial(client: client, body: body), framing))
        case .heartbeat, .disconnect:
            guard rest.isEmpty else { return malformed("HEARTBEAT and DISCONNECT carry no frames") }
            return .success((command == .heartbeat ? .workerHeartbeat : .workerDisconnect, framing))
        default:
            return malformed("unknown worker command 0x\(String(command.rawValue, radix: 16))")
        }
    }

    /// A PARTIAL or FINAL for a client.
    public static func clientReply(_ command: MDPCommand, service: String, body: [[UInt8]], framing: MDPFraming)
        -> [[UInt8]]
    {
        message(framing, MDP.clientHeader, command, Array(service.utf8), body: body)
    }

    /// A REQUEST for a worker, carrying the client's address.
    public static func workerRequest(client: [UInt8], body: [[UInt8]], framing: MDPFraming) -> [[UInt8]] {
        message(framing, MDP.workerHeader, .workerRequest, client, [], body: body)
    }

    /// HEARTBEAT or DISCONNECT, in either direction.
    public static func workerSignal(_ command: MDPCommand, framing: MDPFraming) -> [[UInt8]] {
        framing.frame([MDP.workerHeader, [command.rawValue]])
    }

    // MARK: - Peer side

    /// A client's REQUEST.
    public static func clientRequest(service: String, body: [[UInt8]], framing: MDPFraming = .plain) -> [[UInt8]] {
        message(framing, MDP.clientHeader, .request, Array(service.utf8), body: body)
    }

    /// Decodes a PARTIAL or FINAL the router sent a client.
    public static func decodeClientReply(_ frames: [[UInt8]], framing: MDPFraming = .plain) throws
        -> (command: MDPCommand, service: String, body: [[UInt8]])
    {
        var rest = frames[...]
        if framing.hasDelimiter {
            guard rest.popFirst()?.isEmpty == true else { throw WireError(.malformed, "missing empty delimiter frame") }
        }
        guard rest.popFirst() == MDP.clientHeader else { throw WireError(.malformed, "not an MDPC02 reply") }
        guard let command = rest.popFirst(), command.count == 1,
              command[0] == MDPCommand.partial.rawValue || command[0] == MDPCommand.final.rawValue
        else { throw WireError(.malformed, "reply command must be PARTIAL or FINAL") }
        guard let service = rest.popFirst() else { throw WireError(.malformed, "reply without service frame") }
        return (MDPCommand(rawValue: command[0]), String(decoding: service, as: UTF8.self), Array(rest))
    }

    /// A worker's READY, with optional native metadata.
    public static func workerReady(service: String, metadata: [UInt8]? = nil, framing: MDPFraming = .plain)
        -> [[UInt8]]
    {
        framing.frame([MDP.workerHeader, [MDPCommand.ready.rawValue], Array(service.utf8)] + (metadata.map { [$0] } ?? []))
    }

    /// A worker's PARTIAL or FINAL for `client`.
    public static func workerReply(_ command: MDPCommand, client: [UInt8], body: [[UInt8]],
                                   framing: MDPFraming = .plain) -> [[UInt8]] {
        message(framing, MDP.workerHeader, command, client, [], body: body)
    }

    /// Decodes what the router sent a worker: REQUEST (with client and body), HEARTBEAT or DISCONNECT.
    public static func decodeForWorker(_ frames: [[UInt8]], framing: MDPFraming = .plain) throws
        -> (command: MDPCommand, client: [UInt8], body: [[UInt8]])
    {
        var rest = frames[...]
        if framing.hasDelimiter {
            guard rest.popFirst()?.isEmpty == true else { throw WireError(.malformed, "missing empty delimiter frame") }
        }
        guard rest.popFirst() == MDP.workerHeader else { throw WireError(.malformed, "not an MDPW02 message") }
        guard let command = rest.popFirst(), command.count == 1 else { throw WireError(.malformed, "bad command frame") }
        switch MDPCommand(rawValue: command[0]) {
        case .workerRequest:
            guard let client = rest.popFirst(), rest.popFirst()?.isEmpty == true else {
                throw WireError(.malformed, "REQUEST without client address and empty frame")
            }
            return (.workerRequest, client, Array(rest))
        case .heartbeat, .disconnect:
            return (MDPCommand(rawValue: command[0]), [], [])
        default:
            throw WireError(.malformed, "unexpected command 0x\(String(command[0], radix: 16)) for a worker")
        }
    }

    // MARK: - Helpers

    /// One command byte per frame, made once: a message is built for every request and reply.
    private static let commandFrames: [[UInt8]] = (0...255).map { [UInt8($0)] }

    /// `[delimiter] header command first second body…`, in one allocation.
    private static func message(_ framing: MDPFraming, _ header: [UInt8], _ command: MDPCommand, _ first: [UInt8],
                                _ second: [UInt8]? = nil, body: [[UInt8]]) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        frames.reserveCapacity(5 + body.count)
        if framing.hasDelimiter { frames.append([]) }
        frames.append(header)
        frames.append(commandFrames[Int(command.rawValue)])
        frames.append(first)
        if let second { frames.append(second) }
        frames.append(contentsOf: body)
        return frames
    }

    private static func malformed<T>(_ reason: String) -> Result<T, WireError> {
        .failure(WireError(.malformed, reason))
    }

    private static func validService(_ bytes: [UInt8]) -> Result<String, WireError> {
        guard !bytes.isEmpty, bytes.count <= MDP.maximumServiceLength,
              let name = UTF8Text.string(bytes)
        else { return malformed("service name must be 1–\(MDP.maximumServiceLength) bytes of UTF-8") }
        return .success(name)
    }
}
