// SPDX-License-Identifier: Apache-2.0
internal import COpenSSLCrypto

/// A SHA-256 digest: links each record to the one before it (the log's hash chain).
public struct SHA256Digest: Sendable, Hashable, CustomStringConvertible {
    /// The 32 digest bytes.
    public private(set) var bytes: [UInt8]

    /// The digest that precedes the first record: 32 zero bytes.
    public static let zero = SHA256Digest(uncheckedBytes: [UInt8](repeating: 0, count: 32))

    /// Wraps 32 digest bytes; returns nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        self.bytes = Array(bytes)
    }

    init(uncheckedBytes: [UInt8]) {
        self.bytes = uncheckedBytes
    }

    /// Lowercase hex.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Computes SHA-256 with libcrypto (hardware-accelerated where the CPU allows); one per thread.
final class SHA256Hasher {
    private let context: OpaquePointer

    init() {
        guard let context = EVP_MD_CTX_new() else { preconditionFailure("EVP_MD_CTX_new: out of memory") }
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    func digest(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        // EVP calls fail only on allocation failure or a broken provider: a programmer-level fault.
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1,
              EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1,
              EVP_DigestFinal_ex(context, &out, &length) == 1
        else { preconditionFailure("libcrypto SHA-256 failed") }
        return SHA256Digest(uncheckedBytes: out)
    }

    func digest(_ bytes: [UInt8]) -> SHA256Digest {
        bytes.withUnsafeBytes { digest($0) }
    }
}
