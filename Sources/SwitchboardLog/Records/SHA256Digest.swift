// SPDX-License-Identifier: Apache-2.0
internal import CHash

/// A SHA-256 digest: links each record to the one before it (the log's hash chain).
public struct SHA256Digest: Sendable, Hashable, CustomStringConvertible {
    // Stored inline (no heap allocation per record); the words hold the bytes in memory order.
    private var words: (UInt64, UInt64, UInt64, UInt64)

    /// The digest that precedes the first record: 32 zero bytes.
    public static let zero = SHA256Digest(words: (0, 0, 0, 0))

    private init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// Wraps 32 digest bytes; returns nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        self = Array(bytes).withUnsafeBytes { SHA256Digest(raw: $0) }
    }

    /// Reads 32 bytes (the caller guarantees the count).
    init(raw: UnsafeRawBufferPointer) {
        words = (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// The 32 digest bytes.
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: words, body)
    }

    public static func == (lhs: SHA256Digest, rhs: SHA256Digest) -> Bool {
        lhs.words == rhs.words
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    /// The digest of `bytes`.
    public static func of(_ bytes: some Sequence<UInt8>) -> SHA256Digest {
        let array = Array(bytes)
        return array.withUnsafeBytes { SHA256Hasher.digest($0) }
    }

    /// Lowercase hex.
    public var description: String {
        Hex.encode(bytes)
    }
}

/// Computes SHA-256 with libcrypto (the CPU's SHA extensions where present).
enum SHA256Hasher {
    static func digest(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        var out = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        Swift.withUnsafeMutableBytes(of: &out) { raw in
            // The low-level calls: OpenSSL 3's one-shot SHA256() fetches and frees a provider object
            // on every call, twice as slow for records this small. They fail only for a null context.
            var context = SHA256_CTX()
            _ = SHA256_Init(&context)
            _ = SHA256_Update(&context, bytes.baseAddress, bytes.count)
            _ = SHA256_Final(raw.baseAddress?.assumingMemoryBound(to: UInt8.self), &context)
        }
        return Swift.withUnsafeBytes(of: out) { SHA256Digest(raw: $0) }
    }

    static func digest(_ bytes: [UInt8]) -> SHA256Digest {
        bytes.withUnsafeBytes { digest($0) }
    }
}
