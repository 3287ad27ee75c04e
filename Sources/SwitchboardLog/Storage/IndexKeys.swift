// SPDX-License-Identifier: Apache-2.0

/// Key layouts of the log's LMDB databases (docs/events.md, "Storage").
enum IndexKeys {
    /// Which index of the shared `index` database a key belongs to. Both live in one database so
    /// that an append dirties one index page per commit, not two.
    enum Kind: UInt8 {
        /// `r`: run id and position → empty.
        case run = 0x72
        /// `s`: stream id and stream version → position (8 bytes big-endian).
        case stream = 0x73
    }

    /// `events`: the position as 8 bytes big-endian, so memcmp order is numeric order (`MDB_APPEND`).
    static func position(_ position: UInt64) -> [UInt8] {
        withUnsafeBytes(of: position.bigEndian) { Array($0) }
    }

    static func decodePosition(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    }

    /// `index`: the kind, the id's length, the id, then a big-endian number (position or version).
    static func key(_ kind: Kind, _ id: String, _ number: UInt64) -> [UInt8] {
        withKey(kind, id, number) { Array($0) }
    }

    /// The part of every key of `id` in the `kind` index before its number.
    static func prefix(_ kind: Kind, _ id: String) -> [UInt8] {
        Array(key(kind, id, 0).dropLast(8))
    }

    /// Calls `body` with the key of `id` and `number`, built on the stack.
    static func withKey<R>(
        _ kind: Kind, _ id: String, _ number: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        var id = id
        return try id.withUTF8 { utf8 in
            precondition(utf8.count <= 255, "index ids are at most 255 bytes; callers check")
            return try withUnsafeTemporaryAllocation(byteCount: utf8.count + 10, alignment: 8) { raw in
                raw[0] = kind.rawValue
                raw[1] = UInt8(utf8.count)
                UnsafeMutableRawBufferPointer(rebasing: raw[2..<2 + utf8.count])
                    .copyMemory(from: UnsafeRawBufferPointer(utf8))
                raw.storeBytes(of: number.bigEndian, toByteOffset: 2 + utf8.count, as: UInt64.self)
                return try body(UnsafeRawBufferPointer(raw))
            }
        }
    }

    /// The number after `prefix`, when `key` starts with it.
    static func number(in key: UnsafeRawBufferPointer, after prefix: [UInt8]) -> UInt64? {
        prefix.withUnsafeBytes { number(in: key, after: $0) }
    }

    static func number(in key: UnsafeRawBufferPointer, after prefix: UnsafeRawBufferPointer) -> UInt64? {
        guard key.count == prefix.count + 8, key.starts(with: prefix) else { return nil }
        return UInt64(bigEndian: key.loadUnaligned(fromByteOffset: prefix.count, as: UInt64.self))
    }
}
