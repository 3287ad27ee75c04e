// SPDX-License-Identifier: Apache-2.0
internal import CLMDB

/// The positions an append was given.
public struct AppendResult: Sendable, Hashable {
    /// The first event's position (for an empty batch, the position the next event will get).
    public var firstPosition: UInt64
    /// The last event's position, which is the log's tail after the append.
    public var lastPosition: UInt64
    /// The events as stored, in position order.
    public var events: [RecordedEvent] = []

    public var positions: ClosedRange<UInt64>? {
        firstPosition <= lastPosition ? firstPosition...lastPosition : nil
    }
}

extension EventLog {
    /// Appends `events` in one write transaction (group commit): all of them or none.
    ///
    /// The events get consecutive positions after the current tail; every stream's expected version
    /// is checked (counting earlier events of the same batch); indexes and projections are updated
    /// in the same transaction. With ``Durability/fsync`` the events are on disk when this returns.
    ///
    /// - Throws: ``EventLogError`` — `.invalidEvent` (a limit broken), `.versionConflict` (nothing
    ///   written), `.storage` (disk full, I/O error; nothing written).
    @available(*, noasync, message: "append blocks on disk I/O; call it from a dedicated thread")
    @discardableResult
    public func append(_ events: [NewEvent]) throws -> AppendResult {
        try append(batches: [events])
    }

    /// Appends the events of `batches`, in order, in one write transaction, as ``append(_:)-([NewEvent])``
    /// does with them joined; joining them first would copy every event.
    ///
    /// The arrays are taken over: handed over as their last use, their events' fields move into
    /// the recorded events instead of being copied (a copy retains each of seven fields).
    @available(*, noasync, message: "append blocks on disk I/O; call it from a dedicated thread")
    @discardableResult
    public func append(batches: consuming [[NewEvent]]) throws -> AppendResult {
        guard !isReadOnly else { throw EventLogError(.readOnly, "the event log is open read-only") }
        let count = batches.reduce(0) { $0 + $1.count }
        if count == 0 {
            let next = try tail() + 1
            return AppendResult(firstPosition: next, lastPosition: next - 1)
        }
        var records: [[UInt8]] = []
        var recorded: [RecordedEvent] = []
        var expected: [ExpectedVersion] = []
        records.reserveCapacity(count)
        recorded.reserveCapacity(count)
        expected.reserveCapacity(count)
        let maximumPayloadSize = configuration.maximumPayloadSize
        // Built before the transaction, which may run again after the map grows: what the log
        // assigns is filled in there, in place.
        for batch in batches.indices {
            try batches[batch].withUnsafeMutableBufferPointer { events in
                guard let base = events.baseAddress else { return }
                for index in events.indices {
                    // Moved out and back: read through the buffer, each call would get a copy.
                    var event = (base + index).move()
                    defer { (base + index).initialize(to: event) }
                    try RecordCodec.validate(event, maximumPayloadSize: maximumPayloadSize)
                    if event.streamID.isEmpty && event.expectedVersion != .any {
                        throw EventLogError(.invalidEvent, "an expected version needs a stream id (event \(event.type))")
                    }
                    records.append(RecordCodec.encode(event))
                    expected.append(event.expectedVersion)
                    recorded.append(RecordedEvent(moving: &event))
                }
            }
        }
        try EventLogError.mapping {
            try environment.write { txn in
                try appendRecords(&recorded, expected, &records, in: txn)
            }
        }
        return AppendResult(firstPosition: recorded[0].position, lastPosition: recorded[count - 1].position,
                            events: recorded)
    }

    @available(*, noasync)
    @discardableResult
    public func append(_ event: NewEvent) throws -> AppendResult {
        try append([event])
    }

    /// Gives `recorded` their positions, stream versions and hash links, and stores them with
    /// their indexes and projections.
    private func appendRecords(
        _ recorded: inout [RecordedEvent], _ expected: [ExpectedVersion], _ records: inout [[UInt8]],
        in txn: Transaction
    ) throws {
        var head = try Head.read(txn, databases.meta)
        let first = head.position + 1
        var streamVersions: [String: UInt64] = [:]
        // Batches tend to repeat one stream: remember the last one outside the dictionary.
        var lastStream: (id: String, version: UInt64)?
        for next in recorded.indices {
            let streamID = recorded[next].streamID
            var streamVersion: UInt64 = 0
            if !streamID.isEmpty {
                let current: UInt64
                if let lastStream, lastStream.id == streamID {
                    current = lastStream.version
                } else {
                    if let lastStream { streamVersions[lastStream.id] = lastStream.version }
                    current = try streamVersions[streamID] ?? currentStreamVersion(streamID, in: txn)
                }
                guard expected[next].admits(current) else {
                    throw EventLogError(
                        .versionConflict,
                        "stream \(streamID) is at version \(current), the append expected \(expected[next])")
                }
                streamVersion = current + 1
                lastStream = (streamID, streamVersion)
            }
            let position = head.position + 1
            let checksum = RecordCodec.seal(
                &records[next], position: position, streamVersion: streamVersion, previousHash: head.hash)
            try withUnsafeBytes(of: position.bigEndian) { key in
                try records[next].withUnsafeBytes { value in
                    try txn.put(databases.events, key: key, value: value, flags: sb_lmdb_append)
                }
            }
            if !recorded[next].runID.isEmpty {
                if let runs = databases.runs {
                    // A run's positions only grow: each is appended after the run's last one.
                    var runID = recorded[next].runID
                    try runID.withUTF8 { key in
                        try withUnsafeBytes(of: position.bigEndian) { value in
                            try txn.put(runs, key: UnsafeRawBufferPointer(key), value: value, flags: sb_lmdb_appenddup)
                        }
                    }
                } else {
                    try IndexKeys.withKey(.run, recorded[next].runID, position) { key in
                        try txn.put(databases.index, key: key, value: UnsafeRawBufferPointer(start: nil, count: 0))
                    }
                }
            }
            if !streamID.isEmpty {
                try IndexKeys.withKey(.stream, streamID, streamVersion) { key in
                    try withUnsafeBytes(of: position.bigEndian) { value in
                        try txn.put(databases.index, key: key, value: value)
                    }
                }
            }
            recorded[next].position = position
            recorded[next].streamVersion = streamVersion
            recorded[next].previousHash = head.hash
            recorded[next].checksum = checksum
            head = Head(position: position, hash: SHA256Hasher.digest(records[next]))
        }
        for (projection, database) in projections {
            // A projection still catching up folds these events later, from the log.
            guard try checkpoint(of: projection, in: txn) == first - 1 else { continue }
            try projection.apply(recorded, to: ProjectionState(transaction: txn, database: database))
            try setCheckpoint(head.position, of: projection, in: txn)
        }
        try txn.put(databases.meta, key: MetaKey.head, value: head.encoded)
    }

    /// The number of events in `streamID` as of `txn`.
    func currentStreamVersion(_ streamID: String, in txn: Transaction) throws -> UInt64 {
        guard streamID.utf8.count <= RecordCodec.maximumFieldLength else { return 0 }
        // Keys built on the stack: the router asks this for every new agent instance.
        return try IndexKeys.withKey(.stream, streamID, .max) { last in
            let prefix = UnsafeRawBufferPointer(rebasing: last[..<(last.count - 8)])
            return try txn.withCursor(databases.index) { cursor in
                // The stream's last key is the one just before the first key past every version of it.
                let entry = try cursor.seek(atOrAfter: last).flatMap { entry in
                    IndexKeys.number(in: entry.key, after: prefix) == .max ? entry : try cursor.previous()
                } ?? cursor.last()
                guard let entry else { return 0 }
                return IndexKeys.number(in: entry.key, after: prefix) ?? 0
            }
        }
    }
}

