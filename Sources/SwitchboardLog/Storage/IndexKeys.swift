// SPDX-License-Identifier: Apache-2.0

/// Key layouts of the log's LMDB databases (docs/events.md, "Storage").
enum IndexKeys {
    /// `events`: the position as 8 bytes big-endian, so memcmp order is numeric order (`MDB_APPEND`).
    static func position(_ position: UInt64) -> [UInt8] {
        withUnsafeBytes(of: position.bigEndian) { Array($0) }
    }

    static func decodePosition(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    }

    /// `runs` and `streams`: a length-prefixed id, then a big-endian number (position or version).
    static func prefixed(_ id: String, _ number: UInt64) -> [UInt8] {
        key(id, number: number)
    }

    static func prefix(_ id: String) -> [UInt8] {
        key(id, number: nil)
    }

    private static func key(_ id: String, number: UInt64?) -> [UInt8] {
        var id = id
        return id.withUTF8 { utf8 in
            let total = 1 + utf8.count + (number == nil ? 0 : 8)
            return [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
                buffer[0] = UInt8(utf8.count)
                let raw = UnsafeMutableRawBufferPointer(buffer)
                UnsafeMutableRawBufferPointer(rebasing: raw[1..<1 + utf8.count]).copyMemory(from: UnsafeRawBufferPointer(utf8))
                if let number {
                    raw.storeBytes(of: number.bigEndian, toByteOffset: 1 + utf8.count, as: UInt64.self)
                }
                count = total
            }
        }
    }

    /// The number after `prefix`, when `key` starts with it.
    static func number(in key: UnsafeRawBufferPointer, after prefix: [UInt8]) -> UInt64? {
        guard key.count == prefix.count + 8, key.starts(with: prefix) else { return nil }
        return UInt64(bigEndian: key.loadUnaligned(fromByteOffset: prefix.count, as: UInt64.self))
    }
}
