// SPDX-License-Identifier: Apache-2.0

/// Named state derived from the log, updated in the same write transaction as the events it folds.
///
/// The log keeps each projection's state in its own LMDB database with a checkpoint (the last
/// position folded in). A projection whose checkpoint is behind the log's tail, or whose
/// ``version`` changed, is caught up from the log when the log opens, so its state can always be
/// rebuilt from position 1 and must then be byte-identical to the incrementally built one.
public protocol Projection: Sendable {
    /// Stable name: 1–48 characters of `a-z`, `0-9`, `.`, `-`.
    var name: String { get }
    /// Bump it when the state's format or meaning changes: the state is discarded and rebuilt.
    var version: UInt32 { get }
    /// Folds consecutive events, in position order, into `state`.
    ///
    /// Must be deterministic, and give the same bytes whether the events arrive in one call or
    /// split over many.
    func apply(_ events: [RecordedEvent], to state: ProjectionState) throws
}

/// A projection's key-value state during one write transaction; valid only inside ``Projection/apply(_:to:)``.
public final class ProjectionState {
    private let transaction: Transaction
    private let database: Database

    init(transaction: Transaction, database: Database) {
        self.transaction = transaction
        self.database = database
    }

    /// The value stored under `key` (1–511 bytes), or nil.
    public func value(forKey key: [UInt8]) throws -> [UInt8]? {
        try transaction.get(database, key: key)
    }

    public func setValue(_ value: [UInt8], forKey key: [UInt8]) throws {
        try transaction.put(database, key: key, value: value)
    }

    public func removeValue(forKey key: [UInt8]) throws {
        try transaction.delete(database, key: key)
    }

    /// Calls `body` with the value stored under `key` (1–511 bytes), or nil, read where it lies
    /// in the log's memory map: do not keep it. Neither the key nor the value becomes an array.
    public func withValue<R>(forKey key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> R)
        throws -> R
    {
        try body(try transaction.get(database, key: key))
    }

    /// ``setValue(_:forKey:)`` from buffers the caller owns, such as one on the stack.
    public func setValue(_ value: UnsafeRawBufferPointer, forKey key: UnsafeRawBufferPointer) throws {
        try transaction.put(database, key: key, value: value)
    }

    /// ``removeValue(forKey:)`` with a key the caller owns.
    public func removeValue(forKey key: UnsafeRawBufferPointer) throws {
        try transaction.delete(database, key: key)
    }
}

/// One key-value pair of a projection's state.
public struct ProjectionEntry: Sendable, Hashable {
    public var key: [UInt8]
    public var value: [UInt8]
}

extension Projection {
    static func isValidName(_ name: String) -> Bool {
        (1...48).contains(name.utf8.count)
            && name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2E || $0 == 0x2D }
    }
}
