// SPDX-License-Identifier: Apache-2.0
internal import CLMDB
#if canImport(Glibc)
import Glibc
#endif

/// One LMDB transaction, valid only inside the `read`/`write` closure that received it.
///
/// Pointers it returns point into the map and die with the transaction.
final class Transaction {
    private(set) var handle: OpaquePointer?
    let isReadOnly: Bool

    private init(handle: OpaquePointer, readOnly: Bool) {
        self.handle = handle
        self.isReadOnly = readOnly
    }

    deinit {
        if let handle { mdb_txn_abort(handle) }
    }

    static func begin(in env: OpaquePointer, readOnly: Bool) throws -> Transaction {
        var txn: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(env, nil, readOnly ? sb_lmdb_rdonly : 0, &txn), "mdb_txn_begin")
        guard let txn else { throw LMDBError(returnCode: ENOMEM, operation: "mdb_txn_begin") }
        return Transaction(handle: txn, readOnly: readOnly)
    }

    private var live: OpaquePointer {
        guard let handle else { preconditionFailure("LMDB transaction used after it ended") }
        return handle
    }

    func commit() throws {
        let txn = live
        handle = nil
        // mdb_txn_commit frees the transaction whether or not it succeeds.
        try LMDBError.check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    func abort() {
        guard let txn = handle else { return }
        handle = nil
        mdb_txn_abort(txn)
    }

    /// The value stored under `key`, or nil; the buffer dies with the transaction.
    func get(_ db: Database, key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(live, db.dbi, &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_get")
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    func get(_ db: Database, key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { (k) throws in try get(db, key: k).map { Array($0) } }
    }

    func put(_ db: Database, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: UInt32 = 0)
        throws
    {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBError.check(mdb_put(live, db.dbi, &k, &v, flags), "mdb_put")
    }

    func put(_ db: Database, key: [UInt8], value: [UInt8], flags: UInt32 = 0) throws {
        try key.withUnsafeBytes { (k) throws in
            try value.withUnsafeBytes { (v) throws in try put(db, key: k, value: v, flags: flags) }
        }
    }

    /// Deletes `key`; returns false when it was not there.
    @discardableResult
    func delete(_ db: Database, key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { (key) throws in try delete(db, key: key) }
    }

    @discardableResult
    func delete(_ db: Database, key: UnsafeRawBufferPointer) throws -> Bool {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_del(live, db.dbi, &k, nil)
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc, "mdb_del")
        return true
    }

    /// Removes every entry of `db`, keeping the database.
    func empty(_ db: Database) throws {
        try LMDBError.check(mdb_drop(live, db.dbi, 0), "mdb_drop")
    }

    /// The number of entries in `db`, read from its B-tree header (constant time).
    func entryCount(_ db: Database) throws -> Int {
        var stat = MDB_stat()
        try LMDBError.check(mdb_stat(live, db.dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    /// Runs `body` with a cursor over `db`, closed when `body` returns.
    func withCursor<R>(_ db: Database, _ body: (Cursor) throws -> R) throws -> R {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(live, db.dbi, &cursor), "mdb_cursor_open")
        guard let cursor else { throw LMDBError(returnCode: ENOMEM, operation: "mdb_cursor_open") }
        let box = Cursor(handle: cursor)
        defer { box.close() }
        return try body(box)
    }
}

/// A position in one database during one transaction; entries it returns die with the transaction.
final class Cursor {
    typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
    private var handle: OpaquePointer?

    fileprivate init(handle: OpaquePointer) {
        self.handle = handle
    }

    fileprivate func close() {
        if let handle { mdb_cursor_close(handle) }
        handle = nil
    }

    /// Asks the CPU for the 512 bytes below `value`: where LMDB puts the entry after it in the same
    /// page when entries are appended, so a walk in key order finds it in cache.
    static func prefetchFollowing(_ value: UnsafeRawBufferPointer) {
        guard let start = value.baseAddress.map(UInt.init(bitPattern:)), start > 512 else { return }
        for offset in stride(from: UInt(64), through: 512, by: 64) { sb_lmdb_prefetch(start - offset) }
    }

    func first() throws -> Entry? { try move(MDB_FIRST) }
    func last() throws -> Entry? { try move(MDB_LAST) }
    func next() throws -> Entry? { try move(MDB_NEXT) }
    func previous() throws -> Entry? { try move(MDB_PREV) }

    /// Moves to the first key at or after `key` in memcmp order.
    func seek(atOrAfter key: UnsafeRawBufferPointer) throws -> Entry? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        return try move(MDB_SET_RANGE, key: &k)
    }

    func seek(atOrAfter key: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { (k) throws in try seek(atOrAfter: k) }
    }

    /// In a database of sorted duplicates: moves to `key`'s first value at or after `value` and
    /// returns it; nil when the key has none.
    func seek(key: UnsafeRawBufferPointer, atOrAfterValue value: UnsafeRawBufferPointer) throws
        -> UnsafeRawBufferPointer?
    {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        return try get(MDB_GET_BOTH_RANGE, key: &k, value: &v)
    }

    /// The current key's next value in a database of sorted duplicates; nil after its last.
    func nextDuplicate() throws -> UnsafeRawBufferPointer? {
        var k = MDB_val()
        var v = MDB_val()
        return try get(MDB_NEXT_DUP, key: &k, value: &v)
    }

    private func get(_ op: MDB_cursor_op, key k: inout MDB_val, value v: inout MDB_val) throws
        -> UnsafeRawBufferPointer?
    {
        guard let handle else { preconditionFailure("LMDB cursor used after it closed") }
        let rc = mdb_cursor_get(handle, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_cursor_get")
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    private func move(_ op: MDB_cursor_op) throws -> Entry? {
        var k = MDB_val()
        return try move(op, key: &k)
    }

    private func move(_ op: MDB_cursor_op, key k: inout MDB_val) throws -> Entry? {
        guard let handle else { preconditionFailure("LMDB cursor used after it closed") }
        var v = MDB_val()
        let rc = mdb_cursor_get(handle, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc, "mdb_cursor_get")
        return (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }
}
