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
                // Key and value on the stack: one is written for every request.
                try Self.withKey(events[index].messageID) { key in
                    try Self.withEncoded(position: events[index].position, redeliveries: 0) { value in
                        try state.setValue(value, forKey: key)
                    }
                }
            case RouterEvents.requestRedelivered:
                let key = Array(events[index].messageID.utf8)
                if let entry = try state.value(forKey: key).flatMap(Self.decode) {
                    try state.setValue(Self.encode(position: entry.position, redeliveries: entry.redeliveries + 1),
                                       forKey: key)
                }
            case RouterEvents.replyFinal, RouterEvents.requestFailed:
                try Self.withKey(events[index].causationID) { key in try state.removeValue(forKey: key) }
            default:
                break
            }
        }
    }

    private static func withKey<R>(_ id: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let result = try id.utf8.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return try Array(id.utf8).withUnsafeBytes(body)
    }

    private static func withEncoded<R>(position: UInt64, redeliveries: UInt32,
                                       _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: 12, alignment: 8) { raw in
            raw.storeBytes(of: position.littleEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: redeliveries.littleEndian, toByteOffset: 8, as: UInt32.self)
            return try body(UnsafeRawBufferPointer(raw))
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
