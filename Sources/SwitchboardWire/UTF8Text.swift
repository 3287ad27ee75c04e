// SPDX-License-Identifier: Apache-2.0

/// Text from bytes that must be UTF-8. `String(validating:as:)` instantiates generic metadata on
/// every call, which showed as a few percent of the router's and the host's CPU: ids, headers and
/// names are ASCII, taken here with one pass over the bytes; only other text goes to the validator.
public enum UTF8Text {
    /// The bytes as a string, or nil when they are not UTF-8.
    public static func string(_ bytes: UnsafeRawBufferPointer) -> String? {
        let buffer = bytes.assumingMemoryBound(to: UInt8.self)
        if buffer.allSatisfy({ $0 < 0x80 }) { return String(decoding: buffer, as: UTF8.self) }
        return String(validating: buffer, as: UTF8.self)
    }

    public static func string(_ bytes: [UInt8]) -> String? {
        bytes.withUnsafeBytes { string($0) }
    }

    public static func string(_ bytes: ArraySlice<UInt8>) -> String? {
        bytes.withUnsafeBytes { string($0) }
    }
}
