// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The bytes of a message or event, usually JSON text.
public struct Payload: Sendable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// UTF-8 text, taken as it is.
    public init(text: String) {
        bytes = Array(text.utf8)
    }

    /// `value` as JSON with sorted keys, so equal values always give equal bytes.
    public init(json value: some Encodable) throws {
        bytes = try CanonicalJSON.encode(value)
    }

    /// Decodes the JSON payload.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }
    public var description: String { text }

    /// What ``CanonicalJSON`` writes like, and falls back to.
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
