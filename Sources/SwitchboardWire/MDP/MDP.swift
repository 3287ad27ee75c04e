// SPDX-License-Identifier: Apache-2.0

/// Majordomo Protocol MDP/0.2 (ZeroMQ RFC 18) constants.
///
/// ```
/// client → router  [delim?] "MDPC02" 0x01 service body…            REQUEST
/// router → client  [delim?] "MDPC02" 0x02|0x03 service body…       PARTIAL | FINAL
/// worker → router  [delim?] "MDPW02" 0x01 service [metadata]       READY (metadata: native workers)
///                  [delim?] "MDPW02" 0x03|0x04 client "" body…     PARTIAL | FINAL
///                  [delim?] "MDPW02" 0x05 | 0x06                   HEARTBEAT | DISCONNECT
/// router → worker  [delim?] "MDPW02" 0x02 client "" body…          REQUEST
///                  [delim?] "MDPW02" 0x05 | 0x06                   HEARTBEAT | DISCONNECT
/// ```
/// `delim` is the empty frame some implementations put first; the router answers every peer in
/// the framing it used.
public enum MDP {
    public static let clientHeader: [UInt8] = Array("MDPC02".utf8)
    public static let workerHeader: [UInt8] = Array("MDPW02".utf8)
    /// Both headers, for ``ZMQSocket/sharedFrames``.
    public static let headers = [clientHeader, workerHeader]
    /// The longest service name accepted.
    public static let maximumServiceLength = 255
}

/// Whether a peer puts an empty delimiter frame before the protocol header.
public struct MDPFraming: Sendable, Hashable, CustomStringConvertible {
    public var hasDelimiter: Bool
    public init(hasDelimiter: Bool) { self.hasDelimiter = hasDelimiter }

    /// As RFC 18 writes it: the header is the first frame.
    public static let plain = MDPFraming(hasDelimiter: false)
    /// An empty frame first, as REQ-socket peers and several libraries send.
    public static let delimited = MDPFraming(hasDelimiter: true)

    public var description: String { hasDelimiter ? "delimited" : "plain" }

    func frame(_ frames: [[UInt8]]) -> [[UInt8]] {
        hasDelimiter ? [[]] + frames : frames
    }
}

/// MDP/0.2 command bytes.
public struct MDPCommand: RawRepresentable, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    // Client protocol.
    public static let request = MDPCommand(rawValue: 0x01)
    public static let partial = MDPCommand(rawValue: 0x02)
    public static let final = MDPCommand(rawValue: 0x03)

    // Worker protocol.
    public static let ready = MDPCommand(rawValue: 0x01)
    public static let workerRequest = MDPCommand(rawValue: 0x02)
    public static let workerPartial = MDPCommand(rawValue: 0x03)
    public static let workerFinal = MDPCommand(rawValue: 0x04)
    public static let heartbeat = MDPCommand(rawValue: 0x05)
    public static let disconnect = MDPCommand(rawValue: 0x06)
}

/// A message a peer sent to the router, validated (its routing identity already removed).
public enum MDPPeerMessage: Sendable, Hashable {
    case clientRequest(service: String, body: [[UInt8]])
    case workerReady(service: String, metadata: [UInt8]?)
    case workerPartial(client: [UInt8], body: [[UInt8]])
    case workerFinal(client: [UInt8], body: [[UInt8]])
    case workerHeartbeat
    case workerDisconnect
}
