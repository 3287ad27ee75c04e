// SPDX-License-Identifier: Apache-2.0
internal import CLMDB

/// The append-only event log: LMDB on disk, gapless positions, checksummed and hash-chained records,
/// run and stream indexes, and projections updated in the same transaction as the events.
///
/// One process opens a log for writing (``open(at:configuration:)``, guarded by a file lock);
/// any number open it read-only (``openReadOnly(at:)``), reading while the writer writes.
/// All methods are safe to call from any thread; appends are serialized.
///
/// ```swift
/// let log = try EventLog.open(at: "/var/lib/switchboard")
/// let result = try log.append([NewEvent(type: "run.started", runID: "r1", streamID: "r1", payload: Array("{}".utf8))])
/// let events = try log.events(inRun: "r1")
/// ```
///
/// > Important: `append` blocks on disk I/O (fsync): call it from a dedicated thread, never from
/// > Swift's cooperative pool.
public final class EventLog: Sendable {
    /// The on-disk format version of logs this build creates, kept in `meta`. Format 2 keeps the run
    /// index in a database of its own (`runs`, a run id's positions as sorted duplicates); format 1
    /// kept it among the stream entries of `index`. A log keeps the format it was created with.
    public static let formatVersion: UInt32 = 2
    /// The first format with the `runs` database.
    static let runsDatabaseFormat: UInt32 = 2

    /// The data directory.
    public let path: String
    public let isReadOnly: Bool
    public let configuration: EventLogConfiguration
    /// A random id given to the log when it was created; CloudEvents name it as their source.
    public let identifier: String
    /// The log's on-disk format version (see ``formatVersion``).
    public let format: UInt32

    let environment: Environment
    let databases: Databases
    let projections: [(projection: any Projection, database: Database)]
    private let writerLock: FileLock?
    private let registration: OpenLogRegistry.Registration

    struct Databases: Sendable {
        let events: Database
        let index: Database
        let meta: Database
        /// The run index of a format 2 log; nil in a format 1 log, whose run entries are in `index`.
        let runs: Database?
    }

    static let fixedDatabaseNames = ["events", "index", "meta"]

    /// Opens the log in `path` for writing, creating the directory and the log if needed.
    ///
    /// Projections behind the log (new, or with a new version) are caught up before this returns.
    /// - Throws: ``EventLogError`` — `.locked` when another process writes this log, `.alreadyOpen`
    ///   when this process has it open, `.unsupportedFormat`, `.storage`.
    @available(*, noasync, message: "open may fold the whole log into projections; call it from a dedicated thread")
    public static func open(at path: String, configuration: EventLogConfiguration = .init()) throws -> EventLog {
        try makeDirectories(path)
        let log = try EventLog(path: path, readOnly: false, configuration: configuration)
        try log.catchUpProjections()
        return log
    }

    /// Opens an existing log for reading only; it may be written by another process meanwhile.
    /// - Throws: ``EventLogError`` — `.notFound` when there is no log in `path`.
    /// - Parameter projections: projections beyond run-status to read (they must have been kept by the writer).
    public static func openReadOnly(at path: String, projections: [any Projection] = []) throws -> EventLog {
        guard fileSize(path + "/data.mdb") != nil else {
            throw EventLogError(.notFound, "no event log in \(path) (no data.mdb)")
        }
        return try EventLog(path: path, readOnly: true, configuration: .init(projections: projections))
    }

    private init(path: String, readOnly: Bool, configuration: EventLogConfiguration) throws {
        guard let canonical = canonicalPath(path) else {
            throw EventLogError(.notFound, "no such directory: \(path)")
        }
        var all: [any Projection] = [RunStatusProjection()]
        for projection in configuration.projections {
            guard RunStatusProjection.isValidName(projection.name) else {
                throw EventLogError(.invalidConfiguration, "invalid projection name \"\(projection.name)\"")
            }
            guard !all.contains(where: { $0.name == projection.name }) else {
                throw EventLogError(.invalidConfiguration, "two projections are named \"\(projection.name)\"")
            }
            all.append(projection)
        }
        registration = try OpenLogRegistry.shared.register(canonical)
        writerLock = readOnly ? nil : try FileLock(path: canonical + "/writer.lock")
        self.path = canonical
        self.isReadOnly = readOnly
        self.configuration = configuration

        var options = Environment.Options()
        options.readOnly = readOnly
        options.mapSize = max(configuration.initialMapSize, 1 << 20)
        options.maximumMapSize = max(configuration.maximumMapSize, options.mapSize)
        options.maxDatabases = UInt32(Self.fixedDatabaseNames.count + all.count + 8)
        switch configuration.durability {
        case .buffered: options.flags = sb_lmdb_nosync
        case .none: options.flags = sb_lmdb_nosync | sb_lmdb_writemap
        default: options.flags = 0
        }
        do {
            environment = try Environment(path: canonical, options: options)
            var specs = Self.fixedDatabaseNames.map { (name: $0, flags: sb_lmdb_create) }
            specs += all.map { (name: "p." + $0.name, flags: sb_lmdb_create) }
            let opened: [Database]
            do {
                opened = try environment.openDatabases(specs)
            } catch let error as LMDBError where readOnly && error.returnCode == MDB_NOTFOUND {
                throw EventLogError(.notFound, "no event log in \(path) (not initialised by a writer)")
            }
            let meta = opened[2]
            let stored = try Self.storedFormat(environment, meta)
            if readOnly && stored == nil {
                throw EventLogError(.notFound, "no event log in \(path) (no format record)")
            }
            format = stored ?? Self.formatVersion
            var runs: Database?
            if format >= Self.runsDatabaseFormat {
                // Created before a new log's format record is written, so a reader that finds the
                // record finds the database too.
                do {
                    runs = try environment.openDatabases([
                        (name: "runs", flags: sb_lmdb_create | sb_lmdb_dupsort | sb_lmdb_dupfixed),
                    ])[0]
                } catch let error as LMDBError where readOnly && error.returnCode == MDB_NOTFOUND {
                    throw EventLogError(.corruptRecord, "the log has format \(format) but no runs database")
                }
            }
            databases = Databases(events: opened[0], index: opened[1], meta: meta, runs: runs)
            projections = zip(all, opened.dropFirst(Self.fixedDatabaseNames.count)).map { ($0, $1) }
        } catch let error as LMDBError {
            throw EventLogError.storage(error)
        }
        identifier = try Self.initialiseMeta(environment, databases.meta, stored: format, readOnly: readOnly)
    }

    /// The format version in `meta`, or nil for a log not yet initialised.
    /// - Throws: `.unsupportedFormat` for a format newer than this build's.
    private static func storedFormat(_ env: Environment, _ meta: Database) throws -> UInt32? {
        try EventLogError.mapping {
            guard let stored = try env.read({ txn in try txn.get(meta, key: MetaKey.format) }) else { return nil }
            guard stored.count == 4 else {
                throw EventLogError(.corruptRecord, "the log's format record is \(stored.count) bytes, not 4")
            }
            let version = stored.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            guard version <= formatVersion else {
                throw EventLogError(
                    .unsupportedFormat,
                    "the log has format version \(version); this build reads up to \(formatVersion)")
            }
            return version
        }
    }

    /// Returns the log id, writing it and the format version `format` on first open.
    private static func initialiseMeta(_ env: Environment, _ meta: Database, stored format: UInt32, readOnly: Bool)
        throws -> String
    {
        try EventLogError.mapping {
            if try env.read({ txn in try txn.get(meta, key: MetaKey.format) }) != nil {
                let id = try env.read { txn in try txn.get(meta, key: MetaKey.identifier) } ?? []
                return String(decoding: id, as: UTF8.self)
            }
            guard !readOnly else { throw EventLogError(.notFound, "no event log in \(env.path) (no format record)") }
            var generator = SystemRandomNumberGenerator()
            let id = (0..<2).map { _ in
                let hex = String(generator.next() as UInt64, radix: 16)
                return String(repeating: "0", count: 16 - hex.count) + hex
            }.joined()
            try env.write { txn in
                try txn.put(meta, key: MetaKey.format, value: withUnsafeBytes(of: format.littleEndian) { Array($0) })
                try txn.put(meta, key: MetaKey.identifier, value: Array(id.utf8))
            }
            return id
        }
    }

    /// Flushes commits made under ``Durability/buffered`` or ``Durability/none`` to disk.
    public func sync() throws {
        try EventLogError.mapping { try environment.sync() }
    }
}

/// Keys of the `meta` database.
enum MetaKey {
    static let format = Array("format".utf8)
    static let identifier = Array("log.id".utf8)
    /// Tail position (u64 LE) and the SHA-256 of the record there.
    static let head = Array("head".utf8)
    static func checkpoint(_ projection: String) -> [UInt8] { Array("projection.\(projection)".utf8) }
}

/// The log's tail and the hash of the record there, as kept in `meta`.
struct Head {
    var position: UInt64
    var hash: SHA256Digest

    static let empty = Head(position: 0, hash: .zero)

    init(position: UInt64, hash: SHA256Digest) {
        self.position = position
        self.hash = hash
    }

    init?(_ bytes: [UInt8]) {
        guard bytes.count == 40 else { return nil }
        position = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        hash = bytes.withUnsafeBytes { SHA256Digest(raw: UnsafeRawBufferPointer(rebasing: $0[8...])) }
    }

    var encoded: [UInt8] {
        withUnsafeBytes(of: position.littleEndian) { Array($0) } + hash.bytes
    }

    static func read(_ txn: Transaction, _ meta: Database) throws -> Head {
        guard let bytes = try txn.get(meta, key: MetaKey.head) else { return .empty }
        guard let head = Head(bytes) else {
            throw EventLogError(.corruptRecord, "the log's head record in meta is unreadable")
        }
        return head
    }
}
