// SPDX-License-Identifier: Apache-2.0

extension EventLog {
    /// Events folded per transaction while a projection catches up.
    static let catchUpChunk = 10_000

    /// The last position folded into `projection`, or 0 when its state is empty or of another version.
    func checkpoint(of projection: any Projection, in txn: Transaction) throws -> UInt64 {
        guard let bytes = try txn.get(databases.meta, key: MetaKey.checkpoint(projection.name)), bytes.count == 12
        else { return 0 }
        return bytes.withUnsafeBytes { raw in
            let version = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            return version == projection.version ? UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) : 0
        }
    }

    func setCheckpoint(_ position: UInt64, of projection: any Projection, in txn: Transaction) throws {
        var value = withUnsafeBytes(of: position.littleEndian) { Array($0) }
        withUnsafeBytes(of: projection.version.littleEndian) { value.append(contentsOf: $0) }
        try txn.put(databases.meta, key: MetaKey.checkpoint(projection.name), value: value)
    }

    /// Folds into every projection the events it has not seen, a chunk per transaction.
    @available(*, noasync)
    func catchUpProjections() throws {
        for (projection, database) in projections {
            try EventLogError.mapping {
                // A checkpoint of 0 means empty or outdated state: start from a clean database.
                try environment.write { txn in
                    if try checkpoint(of: projection, in: txn) == 0 {
                        try txn.empty(database)
                        try setCheckpoint(0, of: projection, in: txn)
                    }
                }
                while try environment.write({ txn in try foldChunk(into: projection, database, in: txn) }) {}
            }
        }
    }

    /// Folds the next chunk of events; returns false when the projection has reached the tail.
    private func foldChunk(into projection: any Projection, _ database: Database, in txn: Transaction) throws -> Bool {
        let from = try checkpoint(of: projection, in: txn) + 1
        let events = try readEvents(from: from, limit: Self.catchUpChunk, in: txn)
        guard let last = events.last else { return false }
        try projection.apply(events, to: ProjectionState(transaction: txn, database: database))
        try setCheckpoint(last.position, of: projection, in: txn)
        return true
    }

    /// Discards a projection's state and folds the whole log into it again.
    ///
    /// Appends may go on meanwhile; the projection picks them up as it reaches the tail.
    /// - Throws: ``EventLogError`` `.notFound` when no projection has that name.
    @available(*, noasync)
    public func rebuildProjection(named name: String) throws {
        guard !isReadOnly else { throw EventLogError(.readOnly, "the event log is open read-only") }
        guard let (projection, database) = projections.first(where: { $0.projection.name == name }) else {
            throw EventLogError(.notFound, "no projection named \(name)")
        }
        try EventLogError.mapping {
            try environment.write { txn in
                try txn.empty(database)
                try setCheckpoint(0, of: projection, in: txn)
            }
            while try environment.write({ txn in try foldChunk(into: projection, database, in: txn) }) {}
        }
    }

    /// The names of the projections this log keeps.
    public var projectionNames: [String] { projections.map(\.projection.name) }

    /// Every key-value pair of a projection's state, in key order, and its checkpoint.
    public func projectionState(named name: String) throws -> (checkpoint: UInt64, entries: [ProjectionEntry]) {
        guard let (projection, database) = projections.first(where: { $0.projection.name == name }) else {
            throw EventLogError(.notFound, "no projection named \(name)")
        }
        return try EventLogError.mapping {
            try environment.read { txn in
                var entries: [ProjectionEntry] = []
                try txn.withCursor(database) { cursor in
                    var entry = try cursor.first()
                    while let current = entry {
                        entries.append(ProjectionEntry(key: Array(current.key), value: Array(current.value)))
                        entry = try cursor.next()
                    }
                }
                return (try checkpoint(of: projection, in: txn), entries)
            }
        }
    }

    /// The value a projection keeps under `key`, or nil.
    public func projectionValue(named name: String, key: [UInt8]) throws -> [UInt8]? {
        guard let database = projections.first(where: { $0.projection.name == name })?.database else {
            throw EventLogError(.notFound, "no projection named \(name)")
        }
        return try EventLogError.mapping {
            try environment.read { txn in try txn.get(database, key: key) }
        }
    }

    /// The status of `runID` from the run-status projection: one lookup, whatever the log's size.
    public func runStatus(_ runID: String) throws -> RunStatus? {
        guard let database = projections.first(where: { $0.projection.name == RunStatusProjection.name })?.database
        else { return nil }
        return try EventLogError.mapping {
            try environment.read { txn in
                guard let bytes = try txn.get(database, key: Array(runID.utf8)) else { return nil }
                guard let status = RunStatus(runID: runID, encoded: bytes) else {
                    throw EventLogError(.corruptRecord, "run-status row of run \(runID) is unreadable")
                }
                return status
            }
        }
    }

    /// Every run's status, in run id order.
    public func runs() throws -> [RunStatus] {
        try projectionState(named: RunStatusProjection.name).entries.map { entry in
            let runID = String(decoding: entry.key, as: UTF8.self)
            guard let status = RunStatus(runID: runID, encoded: entry.value) else {
                throw EventLogError(.corruptRecord, "run-status row of run \(runID) is unreadable")
            }
            return status
        }
    }
}
