// SPDX-License-Identifier: Apache-2.0

/// What ``EventLog/verify()`` found.
public struct VerificationReport: Sendable, Hashable {
    /// The first problem found, or nil when the log is sound.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The position of the first bad record; nil for problems not tied to one record.
        public var position: UInt64?
        public var reason: String
        public var description: String {
            position.map { "position \($0): \(reason)" } ?? reason
        }
    }

    public var eventsChecked: Int
    public var lastPosition: UInt64
    /// The SHA-256 of the last record: the head of the hash chain.
    public var headHash: SHA256Digest
    public var problem: Problem?

    public var isSound: Bool { problem == nil }
}

/// Counts and sizes for `switchboard log stat`.
public struct LogStatistics: Sendable, Hashable {
    public var identifier: String
    public var eventCount: Int
    public var lastPosition: UInt64
    public var runCount: Int
    /// Entries of the run and stream indexes together.
    public var indexEntries: Int
    public var fileSize: Int
    public var mapSize: Int
}

extension EventLog {
    /// Checks every record's checksum, the gapless positions, the hash chain up to the head kept in
    /// `meta`, and that the indexes hold one entry per indexed event.
    public func verify() throws -> VerificationReport {
        try EventLogError.mapping {
            try environment.read { txn in
                var report = VerificationReport(eventsChecked: 0, lastPosition: 0, headHash: .zero, problem: nil)
                var runEntries = 0
                var streamEntries = 0
                do {
                    try walkRecords(from: 1, in: txn) { view in
                        guard view.position == report.lastPosition + 1 else {
                            throw EventLogError.corrupt(report.lastPosition + 1, "record missing (next is \(view.position))")
                        }
                        guard SHA256Digest(raw: view.previousHash) == report.headHash else {
                            throw EventLogError.corrupt(
                                view.position, "hash chain broken: previous-record hash does not match record \(report.lastPosition)")
                        }
                        if !view.field(1).isEmpty { runEntries += 1 }
                        if !view.field(2).isEmpty { streamEntries += 1 }
                        report.headHash = SHA256Hasher.digest(view.bytes)
                        report.lastPosition = view.position
                        report.eventsChecked += 1
                        return true
                    }
                } catch let error as EventLogError where error.code == .corruptRecord {
                    report.problem = .init(position: error.position, reason: error.reason)
                    return report
                }
                let head = try Head.read(txn, databases.meta)
                if head.position != report.lastPosition || head.hash != report.headHash {
                    report.problem = .init(
                        position: report.lastPosition,
                        reason: "head in meta (position \(head.position), hash \(head.hash)) does not match the last record")
                } else {
                    let (runIndexed, streamIndexed) = try countIndexEntries(in: txn)
                    if runIndexed != runEntries {
                        report.problem = .init(position: nil, reason: "run index holds \(runIndexed) entries for \(runEntries) events")
                    } else if streamIndexed != streamEntries {
                        report.problem = .init(position: nil, reason: "stream index holds \(streamIndexed) entries for \(streamEntries) events")
                    }
                }
                return report
            }
        }
    }

    /// Counts from LMDB's B-tree headers and the file system: constant time.
    public func statistics() throws -> LogStatistics {
        let runTable = projections.first { $0.projection.name == RunStatusProjection.name }?.database
        let mapSize = environment.mapSize  // not inside the read: the gate must not be taken twice
        return try EventLogError.mapping {
            try environment.read { txn in
                let last = try lastPosition(in: txn)
                return LogStatistics(
                    identifier: identifier,
                    eventCount: try txn.entryCount(databases.events),
                    lastPosition: last,
                    runCount: try runTable.map { try txn.entryCount($0) } ?? 0,
                    indexEntries: try txn.entryCount(databases.index) + (databases.runs.map { try txn.entryCount($0) } ?? 0),
                    fileSize: fileSize(path + "/data.mdb") ?? 0,
                    mapSize: mapSize)
            }
        }
    }
}

extension EventLog {
    /// Counts the run and stream index entries (a full walk of the index: for verification only).
    fileprivate func countIndexEntries(in txn: Transaction) throws -> (runs: Int, streams: Int) {
        try txn.withCursor(databases.index) { cursor in
            // A format 2 log's run entries are the values of `runs` (its count is of values, not keys).
            var counts = (runs: try databases.runs.map { try txn.entryCount($0) } ?? 0, streams: 0)
            var entry = try cursor.first()
            while let current = entry {
                switch current.key.first {
                case IndexKeys.Kind.run.rawValue: counts.runs += 1
                case IndexKeys.Kind.stream.rawValue: counts.streams += 1
                default: throw EventLogError(.corruptRecord, "index holds a key of unknown kind")
                }
                entry = try cursor.next()
            }
            return counts
        }
    }
}

