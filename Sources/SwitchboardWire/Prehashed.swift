// SPDX-License-Identifier: Apache-2.0

/// A key hashed once. A Swift dictionary or set compares a key with every entry on its probe
/// path; ids and run ids share long prefixes, so each such comparison reads bytes. With the hash
/// kept, entries whose hash differs are passed by comparing two integers, and a key looked up
/// several times is hashed once. For the router's and the host's tables of thousands of entries.
@frozen
public struct Prehashed<Value: Hashable>: Hashable {
    public let value: Value
    @usableFromInline let precomputedHash: Int

    @inlinable
    public init(_ value: Value) {
        self.value = value
        var hasher = Hasher()
        hasher.combine(value)
        precomputedHash = hasher.finalize()
    }

    @inlinable
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.precomputedHash == rhs.precomputedHash && lhs.value == rhs.value
    }

    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(precomputedHash)
    }
}

extension Prehashed: Sendable where Value: Sendable {}
