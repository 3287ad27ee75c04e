// SPDX-License-Identifier: Apache-2.0

extension EventLog {
    /// The last position (0 for an empty log).
    public func tail() throws -> UInt64 {
        try EventLogError.mapping {
            try environment.read { txn in try lastPosition(in: txn) }
        }
    }

    /// The event at `position`, or nil past the tail.
    /// - Throws: ``EventLogError`` `.corruptRecord` naming the position when the record fails its checks.
    public func event(at position: UInt64) throws -> RecordedEvent? {
        try EventLogError.mapping {
            try environment.read { txn in
                guard let bytes = try withUnsafeBytes(of: position.bigEndian, { key in
                    try txn.get(databases.events, key: key)
                }) else { return nil }
                return try RecordCodec.decode(bytes, position: position)
            }
        }
    }

    /// Up to `limit` events from `position` on, in order.
    public func events(from position: UInt64 = 1, limit: Int = .max) throws -> [RecordedEvent] {
        try EventLogError.mapping {
            try environment.read { txn in try readEvents(from: position, limit: limit, in: txn) }
        }
    }

    /// Calls `body` with each event from `position` on until it returns false; returns how many it saw.
    ///
    /// One read transaction covers the whole walk: `body` sees a consistent snapshot.
    @discardableResult
    public func forEachEvent(from position: UInt64 = 1, _ body: (RecordedEvent) throws -> Bool) throws -> Int {
        try EventLogError.mapping {
            try environment.read { txn in
                var count = 0
                try walkRecords(from: position, in: txn) { view in
                    count += 1
                    return try body(RecordCodec.decode(view.bytes, position: view.position))
                }
                return count
            }
        }
    }

    /// Up to `limit` events of run `runID` at or after `position`, in order.
    public func events(inRun runID: String, from position: UInt64 = 1, limit: Int = .max) throws -> [RecordedEvent] {
        try indexed(.run, id: runID, from: position, limit: limit) { key, _ in key }
    }

    /// Up to `limit` events of stream `streamID` from stream version `version` on, in order.
    public func events(inStream streamID: String, fromVersion version: UInt64 = 1, limit: Int = .max) throws
        -> [RecordedEvent]
    {
        try indexed(.stream, id: streamID, from: version, limit: limit) { _, value in
            IndexKeys.decodePosition(value)
        }
    }

    /// The number of events in `streamID` (0 when it has none).
    public func streamVersion(_ streamID: String) throws -> UInt64 {
        try EventLogError.mapping { try environment.read { txn in try currentStreamVersion(streamID, in: txn) } }
    }

    // MARK: - Internals shared by reads, catch-up and verification

    /// The key of the last record: the tail (0 for an empty log).
    func lastPosition(in txn: Transaction) throws -> UInt64 {
        try txn.withCursor(databases.events) { cursor in
            try cursor.last().flatMap { IndexKeys.decodePosition($0.key) } ?? 0
        }
    }

    func readEvents(from position: UInt64, limit: Int, in txn: Transaction) throws -> [RecordedEvent] {
        var events: [RecordedEvent] = []
        guard limit > 0 else { return events }
        try walkRecords(from: position, in: txn) { view in
            events.append(try RecordCodec.decode(view.bytes, position: view.position))
            return events.count < limit
        }
        return events
    }

    /// Walks stored records from `position` with zero-copy, checksum-verified views.
    func walkRecords(from position: UInt64, in txn: Transaction, _ body: (RecordView) throws -> Bool) throws {
        try txn.withCursor(databases.events) { cursor in
            var entry = try cursor.seek(atOrAfter: IndexKeys.position(max(position, 1)))
            while let current = entry {
                guard let position = IndexKeys.decodePosition(current.key) else {
                    throw EventLogError(.corruptRecord, "events database holds a key of \(current.key.count) bytes")
                }
                Cursor.prefetchFollowing(current.value)
                guard try body(try RecordView(current.value, position: position)) else { return }
                entry = try cursor.next()
            }
        }
    }

    /// Reads the events an index lists under `id` from `number` on.
    private func indexed(
        _ kind: IndexKeys.Kind, id: String, from number: UInt64, limit: Int,
        position: (UInt64, UnsafeRawBufferPointer) -> UInt64?
    ) throws -> [RecordedEvent] {
        guard limit > 0 else { return [] }
        return try EventLogError.mapping {
            try environment.read { txn in
                var events: [RecordedEvent] = []
                try walkIndexed(kind, id: id, from: number, in: txn, position: position) { record in
                    events.append(RecordCodec.decodeVerified(record))
                    return events.count < limit
                }
                return events
            }
        }
    }

    /// Walks the records an index lists under `id` from `number` on, with zero-copy,
    /// checksum-verified views, until `body` returns false.
    func walkIndexed(
        _ kind: IndexKeys.Kind, id: String, from number: UInt64, in txn: Transaction,
        position: (UInt64, UnsafeRawBufferPointer) -> UInt64?, _ body: (RecordView) throws -> Bool
    ) throws {
        // No event carries an id over 255 bytes, so none is indexed under one.
        guard !id.isEmpty, id.utf8.count <= RecordCodec.maximumFieldLength else { return }
        if kind == .run, let runs = databases.runs {
            return try walkRun(runs, id: id, from: number, in: txn, body)
        }
        let prefix = IndexKeys.prefix(kind, id)
        try txn.withCursor(databases.index) { cursor in
            var entry = try cursor.seek(atOrAfter: IndexKeys.key(kind, id, number))
            try walkPositions(of: id, in: txn, body) {
                guard let current = entry, let key = IndexKeys.number(in: current.key, after: prefix) else { return nil }
                guard let target = position(key, current.value) else {
                    throw EventLogError(.corruptRecord, "index entry \(key) of \(id) is unreadable")
                }
                entry = try cursor.next()
                return target
            }
        }
    }

    /// Walks run `id`'s records from `position` on in a format 2 log: its positions are sorted
    /// duplicates of its key in `runs`.
    private func walkRun(
        _ runs: Database, id: String, from position: UInt64, in txn: Transaction, _ body: (RecordView) throws -> Bool
    ) throws {
        var id = id
        try id.withUTF8 { key in
            try txn.withCursor(runs) { cursor in
                var value = try withUnsafeBytes(of: max(position, 1).bigEndian) { start in
                    try cursor.seek(key: UnsafeRawBufferPointer(key), atOrAfterValue: start)
                }
                try walkPositions(of: String(decoding: key, as: UTF8.self), in: txn, body) {
                    guard let current = value else { return nil }
                    guard let target = IndexKeys.decodePosition(current) else {
                        throw EventLogError(.corruptRecord, "run index of \(String(decoding: key, as: UTF8.self)) holds a value of \(current.count) bytes")
                    }
                    value = try cursor.nextDuplicate()
                    return target
                }
            }
        }
    }

    /// Hands `body` the record at each position `next` yields, until it yields nil or `body`
    /// returns false.
    private func walkPositions(
        of id: String, in txn: Transaction, _ body: (RecordView) throws -> Bool, next: () throws -> UInt64?
    ) throws {
        try txn.withCursor(databases.events) { records in
            // The record last read: a run's events often lie next to each other, and a step to
            // the next record costs less than a lookup from the root of the tree.
            var last: UInt64?
            while let target = try next() {
                guard let bytes = try record(at: target, after: &last, in: records) else {
                    throw EventLogError(.corruptRecord, "index entry of \(id) points at no event (position \(target))")
                }
                Cursor.prefetchFollowing(bytes)
                guard try body(try RecordView(bytes, position: target)) else { return }
            }
        }
    }

    /// The stored record at `position`, stepping on from the record at `last` when it is the one
    /// just before, else seeking it; `last` becomes `position` when found.
    private func record(at position: UInt64, after last: inout UInt64?, in records: Cursor) throws
        -> UnsafeRawBufferPointer?
    {
        if let previous = last, previous &+ 1 == position, let next = try records.next(),
           IndexKeys.decodePosition(next.key) == position {
            last = position
            return next.value
        }
        let found = try withUnsafeBytes(of: position.bigEndian) { key in try records.seek(atOrAfter: key) }
        guard let found, IndexKeys.decodePosition(found.key) == position else {
            last = nil
            return nil
        }
        last = position
        return found.value
    }
}
