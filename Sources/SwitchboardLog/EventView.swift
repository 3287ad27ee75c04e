// SPDX-License-Identifier: Apache-2.0

/// A checksum-verified look at one stored event without copying it, for fast scans.
///
/// ``EventLog/scan(from:_:)`` hands the same view to its closure for every event, pointing at the
/// next record each time. It is valid only inside that closure: using it afterwards traps.
/// Call ``event()`` to keep a copy.
public final class EventView {
    private var view: RecordView?

    init() {}

    fileprivate func point(at record: RecordView?) {
        view = record
    }

    private var record: RecordView {
        guard let view else { preconditionFailure("EventView used outside the scan that produced it") }
        return view
    }

    public var position: UInt64 { record.position }
    public var type: String { string(0) }
    public var schemaVersion: UInt16 { record.schemaVersion }
    public var runID: String { string(1) }
    public var streamID: String { string(2) }
    public var streamVersion: UInt64 { record.streamVersion }
    public var messageID: String { string(3) }
    public var causationID: String { string(4) }
    public var timestamp: Timestamp { record.timestamp }
    public var payloadEncoding: PayloadEncoding { record.payloadEncoding }
    public var payloadCount: Int { record.payload.count }

    /// Calls `body` with the payload bytes, which live in the log's memory map: do not keep them.
    public func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(record.payload)
    }

    /// Calls `body` with the type's UTF-8 bytes, to test the type without making a string.
    public func withType<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(record.field(0))
    }

    /// Calls `body` with the stream id's UTF-8 bytes.
    public func withStreamID<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(record.field(2))
    }

    /// Calls `body` with the causation id's UTF-8 bytes, to look it up without making a string.
    public func withCausationID<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(record.field(4))
    }

    /// A copy of the whole event.
    public func event() -> RecordedEvent {
        RecordCodec.decodeVerified(record)
    }

    private func string(_ field: Int) -> String {
        RecordCodec.string(record.field(field))
    }
}

extension EventLog {
    /// Walks events from `position` on without copying them, until `body` returns false; returns
    /// how many it saw. Every record's checksum is verified; one read transaction covers the walk.
    /// - Throws: ``EventLogError`` `.corruptRecord` at the first record that fails its checks.
    @discardableResult
    public func scan(from position: UInt64 = 1, _ body: (EventView) throws -> Bool) throws -> Int {
        try scanViews(body) { txn, each in try walkRecords(from: position, in: txn, each) }
    }

    /// Walks the events of run `runID` in order without copying them, until `body` returns false;
    /// returns how many it saw. Like ``scan(from:_:)``, the view is valid only inside `body`.
    @discardableResult
    public func scan(inRun runID: String, _ body: (EventView) throws -> Bool) throws -> Int {
        try scanViews(body) { txn, each in
            try walkIndexed(.run, id: runID, from: 1, in: txn, position: { key, _ in key }, each)
        }
    }

    /// Hands each record `walk` visits to `body` through one view, in one read transaction.
    private func scanViews(
        _ body: (EventView) throws -> Bool, walk: (Transaction, (RecordView) throws -> Bool) throws -> Void
    ) throws -> Int {
        let view = EventView()
        defer { view.point(at: nil) }
        // `walk` calls `body` only while it runs.
        return try withoutActuallyEscaping(body) { body in
            try EventLogError.mapping {
                try environment.read { txn in
                    var count = 0
                    try walk(txn) { record in
                        count += 1
                        view.point(at: record)
                        return try body(view)
                    }
                    return count
                }
            }
        }
    }
}
