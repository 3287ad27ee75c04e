// SPDX-License-Identifier: Apache-2.0
public import SwitchboardLog

/// The requests received and not yet answered: message id → position of its `request.received`
/// and how often it was redelivered. A restarted router reads this instead of the whole log.
public struct PendingRequestsProjection: Projection {
    public static let name = "router-pending"
    public var name: String { Self.name }
    /// 2: events in a stream (an agent's) are not the router's and are passed over.
    public var version: UInt32 { 2 }

    public init() {}

    public func apply(_ events: [RecordedEvent], to state: ProjectionState) throws {
        // Read in place, not copied out of the array: an event has eight reference-counted fields.
        // Only the router's own events, which have no stream: an agent may emit any type.
        for index in events.indices where events[index].streamID.isEmpty {
            switch events[index].type {
            case RouterEvents.requestReceived:
                try state.setValue(Self.encode(position: events[index].position, redeliveries: 0),
                                   forKey: Array(events[index].messageID.utf8))
            case RouterEvents.requestRedelivered:
                let key = Array(events[index].messageID.utf8)
                if let entry = try state.value(forKey: key).flatMap(Self.decode) {
                    try state.setValue(Self.encode(position: entry.position, redeliveries: entry.redeliveries + 1),
                                       forKey: key)
                }
            case RouterEvents.replyFinal, RouterEvents.requestFailed:
                try state.removeValue(forKey: Array(events[index].causationID.utf8))
            default:
                break
            }
        }
    }

    /// `u64 LE position | u32 LE redeliveries`.
    static func encode(position: UInt64, redeliveries: UInt32) -> [UInt8] {
        // One array, sized once: one is written for every request.
        [UInt8](unsafeUninitializedCapacity: 12) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.storeBytes(of: position.littleEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: redeliveries.littleEndian, toByteOffset: 8, as: UInt32.self)
            count = 12
        }
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
