// SPDX-License-Identifier: Apache-2.0
public import SwitchboardLog

/// The requests received and not yet answered: message id → position of its `request.received`
/// and how often it was redelivered. A restarted router reads this instead of the whole log.
public struct PendingRequestsProjection: Projection {
    public static let name = "router-pending"
    public var name: String { Self.name }
    public var version: UInt32 { 1 }

    public init() {}

    public func apply(_ events: [RecordedEvent], to state: ProjectionState) throws {
        for event in events {
            switch event.type {
            case RouterEvents.requestReceived:
                try state.setValue(Self.encode(position: event.position, redeliveries: 0),
                                   forKey: Array(event.messageID.utf8))
            case RouterEvents.requestRedelivered:
                let key = Array(event.messageID.utf8)
                if let entry = try state.value(forKey: key).flatMap(Self.decode) {
                    try state.setValue(Self.encode(position: entry.position, redeliveries: entry.redeliveries + 1),
                                       forKey: key)
                }
            case RouterEvents.replyFinal, RouterEvents.requestFailed:
                try state.removeValue(forKey: Array(event.causationID.utf8))
            default:
                break
            }
        }
    }

    /// `u64 LE position | u32 LE redeliveries`.
    static func encode(position: UInt64, redeliveries: UInt32) -> [UInt8] {
        withUnsafeBytes(of: position.littleEndian) { Array($0) } + withUnsafeBytes(of: redeliveries.littleEndian) { Array($0) }
    }

    static func decode(_ bytes: [UInt8]) -> (position: UInt64, redeliveries: UInt32)? {
        guard bytes.count == 12 else { return nil }
        return bytes.withUnsafeBytes {
            (UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)),
             UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        }
    }
}

extension Router {
    /// The projections a router's log must be opened with.
    public static let projections: [any Projection] = [PendingRequestsProjection(), ApprovalsProjection(), UsageProjection()]
}
