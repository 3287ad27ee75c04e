// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog

/// Reads the router's event payloads (flat JSON objects of strings, numbers and arrays of base64
/// strings) without a general JSON decoder: replay reads one per logged message, and must be fast.
struct FlatJSON {
    private(set) var strings: [String: String] = [:]
    private(set) var arrays: [String: [[UInt8]]] = [:]

    /// Nil when the text is not a flat object of that shape.
    init?(_ bytes: [UInt8]) {
        var index = 0
        func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D
                || bytes[index] == 0x09 { index += 1 }
        }
        func string() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            let start = index
            var plain = true
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                if bytes[index] == UInt8(ascii: "\\") {
                    plain = false
                    index += 1
                }
                index += 1
            }
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            if plain { return String(decoding: bytes[start..<index], as: UTF8.self) }
            return Self.unescape(bytes[start..<index])
        }
        skipSpace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { return }
        while true {
            skipSpace()
            guard let key = string() else { return nil }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            skipSpace()
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                guard let value = string() else { return nil }
                strings[key] = value
            case UInt8(ascii: "["):
                index += 1
                var items: [[UInt8]] = []
                skipSpace()
                while index < bytes.count, bytes[index] != UInt8(ascii: "]") {
                    guard bytes[index] == UInt8(ascii: "\"") else { return nil }
                    let start = index + 1
                    guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")),
                          let decoded = Base64.decode(bytes[start..<end])
                    else { return nil }
                    items.append(decoded)
                    index = end + 1
                    skipSpace()
                    if index < bytes.count, bytes[index] == UInt8(ascii: ",") {
                        index += 1
                        skipSpace()
                    }
                }
                guard index < bytes.count else { return nil }
                index += 1
                arrays[key] = items
            default:
                let start = index
                while index < bytes.count, bytes[index] != UInt8(ascii: ","), bytes[index] != UInt8(ascii: "}") {
                    index += 1
                }
                strings[key] = String(decoding: bytes[start..<index], as: UTF8.self)
            }
            skipSpace()
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "}") { return }
            guard bytes[index] == UInt8(ascii: ",") else { return nil }
            index += 1
        }
    }

    private static func unescape(_ bytes: ArraySlice<UInt8>) -> String? {
        var out = [UInt8]()
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.endIndex else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard index + 4 < bytes.endIndex,
                      let value = UInt32(String(decoding: bytes[(index + 1)...(index + 4)], as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(value)
                else { return nil }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
                index += 4
            default: out.append(bytes[index])
            }
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
