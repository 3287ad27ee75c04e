// SPDX-License-Identifier: Apache-2.0
internal import CLMDB
#if canImport(Glibc)
import Glibc
#endif

/// A named LMDB database within an ``Environment``; the handle stays valid while the environment is open.
struct Database: Sendable, Hashable {
    let dbi: MDB_dbi
}

/// Owns one LMDB environment: `deinit` closes it, nothing else does.
///
/// Read transactions may run on any thread at any time (`MDB_NOTLS`); write transactions are
/// serialized by LMDB's writer lock. The map grows by itself when a write hits `MDB_MAP_FULL`,
/// and adopts a size grown by another process when a read hits `MDB_MAP_RESIZED`.
final class Environment: @unchecked Sendable {
    // Invariant: `handle` is created and fully opened in init (or released there on failure) and
    // closed only in deinit. An MDB_NOTLS environment may be shared between threads; the one
    // operation that must not overlap transactions, mdb_env_set_mapsize, runs under `gate`.

    struct Options: Sendable {
        var readOnly = false
        var flags: UInt32 = 0
        var mapSize = 64 << 20
        var maximumMapSize = 1 << 40
        var maxDatabases: UInt32 = 16
        var maxReaders: UInt32 = 1024
    }

    let path: String
    let options: Options
    private let handle: OpaquePointer
    private let gate = ReadWriteGate()

    init(path: String, options: Options) throws {
        var env: OpaquePointer?
        try LMDBError.check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw LMDBError(returnCode: ENOMEM, operation: "mdb_env_create") }
        do {
            try LMDBError.check(mdb_env_set_maxdbs(env, options.maxDatabases), "mdb_env_set_maxdbs")
            try LMDBError.check(mdb_env_set_maxreaders(env, options.maxReaders), "mdb_env_set_maxreaders")
            try LMDBError.check(mdb_env_set_mapsize(env, options.mapSize), "mdb_env_set_mapsize")
            var flags = options.flags | sb_lmdb_notls
            // Readers walk the log in order (replay, dump, verify), so the kernel's read-ahead pays
            // when the log is not in the page cache; the writer's reads are scattered.
            flags |= options.readOnly ? sb_lmdb_rdonly : sb_lmdb_nordahead
            try LMDBError.check(mdb_env_open(env, path, flags, 0o644), "mdb_env_open(\(path))")
        } catch {
            // mdb_env_close releases a half-created environment too.
            mdb_env_close(env)
            throw error
        }
        self.handle = env
        self.path = path
        self.options = options
    }

    deinit {
        mdb_env_close(handle)
    }

    /// The current size of the memory map in bytes.
    var mapSize: Int {
        gate.withShared {
            var info = MDB_envinfo()
            mdb_env_info(handle, &info)
            return info.me_mapsize
        }
    }

    /// The database page size in bytes.
    var pageSize: Int {
        var stat = MDB_stat()
        mdb_env_stat(handle, &stat)
        return Int(stat.ms_psize)
    }

    /// Flushes buffered writes to disk (`mdb_env_sync` with force).
    func sync() throws {
        let code = mdb_env_sync(handle, 1)
        guard code != MDB_SUCCESS else { return }
        throw StorageRoom.explaining(LMDBError(returnCode: code, operation: "mdb_env_sync"), directory: path,
                                     outcome: "commits made since the last sync may not be on disk yet")
    }

    /// Opens (or, in a writable environment, creates) named databases, each with its flags.
    func openDatabases(_ specs: [(name: String, flags: UInt32)]) throws -> [Database] {
        try gate.withShared { () throws -> [Database] in
            let txn = try Transaction.begin(in: handle, readOnly: options.readOnly)
            var result: [Database] = []
            for spec in specs {
                var dbi = MDB_dbi()
                let flags = options.readOnly ? spec.flags & ~sb_lmdb_create : spec.flags
                let rc = mdb_dbi_open(txn.handle, spec.name, flags, &dbi)
                if rc != MDB_SUCCESS {
                    txn.abort()
                    throw LMDBError(returnCode: rc, operation: "mdb_dbi_open(\(spec.name))")
                }
                result.append(Database(dbi: dbi))
            }
            // Committing (read-only transactions too) moves the handles into the shared environment.
            try txn.commit()
            return result
        }
    }

    /// Runs `body` in a read-only transaction; the transaction ends when `body` returns.
    ///
    /// > Important: Values read through the transaction point into the map: copy them out before
    /// > returning. Do not start another transaction inside `body`.
    func read<R>(_ body: (Transaction) throws -> R) throws -> R {
        while true {
            let outcome: R? = try gate.withShared { () throws -> R? in
                let txn: Transaction
                do {
                    txn = try Transaction.begin(in: handle, readOnly: true)
                } catch let error as LMDBError where error.isMapResized {
                    return nil
                }
                defer { txn.abort() }
                return try body(txn)
            }
            if let outcome { return outcome }
            // Another process grew the map beyond ours: adopt its size (needs no transaction running).
            try gate.withExclusive { () throws in
                try LMDBError.check(mdb_env_set_mapsize(handle, 0), "mdb_env_set_mapsize")
            }
        }
    }

    /// Runs `body` in a write transaction and commits it; an error thrown by `body` aborts it.
    ///
    /// When the map is full the transaction is aborted, the map grows, and `body` runs again from
    /// the start: it must have no effects outside the transaction that a second run would repeat.
    @available(*, noasync)
    func write<R>(_ body: (Transaction) throws -> R) throws -> R {
        precondition(!options.readOnly, "write transaction on a read-only environment")
        while true {
            let sizeBefore = mapSize
            do {
                return try gate.withShared { () throws -> R in
                    let txn = try Transaction.begin(in: handle, readOnly: false)
                    var committed = false
                    defer { if !committed { txn.abort() } }
                    let result = try body(txn)
                    try txn.commit()
                    committed = true
                    return result
                }
            } catch let error as LMDBError where error.isMapFull {
                try grow(from: sizeBefore)
            } catch let error as LMDBError {
                throw StorageRoom.explaining(error, directory: path)
            }
        }
    }

    /// Doubles the map (up to the maximum) unless another thread already grew it.
    private func grow(from observed: Int) throws {
        try gate.withExclusive { () throws in
            var info = MDB_envinfo()
            mdb_env_info(handle, &info)
            guard info.me_mapsize == observed else { return }
            guard observed < options.maximumMapSize else {
                throw LMDBError(returnCode: MDB_MAP_FULL, operation: "grow map beyond maximum \(options.maximumMapSize)")
            }
            let next = min(options.maximumMapSize, max(observed * 2, observed + (64 << 20)))
            try LMDBError.check(mdb_env_set_mapsize(handle, next), "mdb_env_set_mapsize(\(next))")
        }
    }
}
