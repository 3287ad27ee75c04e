// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog

/// Reads the router's JSON event payloads (flat objects of strings, numbers and arrays of base64
/// strings: lock entries, and message events in logs from before the binary field layout) without a
/// general JSON decoder: replay reads one per logged message, and must be fast.
struct FlatJSON {
    private(set) var strings: [String: String] = [:]
    private(set) var arrays: [String: [[UInt8]]] = [:]

    /// Nil when the text is not a flat object of that shape.
    init?(_ bytes: [UInt8]) {
        guard let json = bytes.withUnsafeBytes(FlatJSON.init) else { return nil }
        self = json
    }

    init?(_ raw: UnsafeRawBufferPointer) {
        var strings: [String: String] = [:]
        var arrays: [String: [[UInt8]]] = [:]
        let valid = Self.forEach(in: raw) { member in
            let key = String(decoding: member.key, as: UTF8.self)
            if member.isArray {
                guard let frames = member.frames else { return false }
                arrays[key] = frames
            } else {
                guard let text = member.string else { return false }
                strings[key] = text
            }
            return true
        }
        guard valid else { return nil }
        self.strings = strings
        self.arrays = arrays
    }

    /// One member of an object, read in place: values are decoded only when asked for.
    struct Member {
        /// The key's bytes as written (keys of router payloads carry no escapes).
        let key: UnsafeRawBufferPointer
        /// The value's text: a quoted string, an array, or a bare number or literal.
        fileprivate let value: UnsafeRawBufferPointer

        func keyIs(_ name: StaticString) -> Bool { key.holds(name) }

        var isArray: Bool { value.first == UInt8(ascii: "[") }

        /// Whether the value is a quoted string.
        var isString: Bool { value.first == UInt8(ascii: "\"") }

        /// A string's unescaped text, or a number's or literal's text; nil for an array.
        var string: String? {
            guard let first = value.first, first != UInt8(ascii: "[") else { return nil }
            guard first == UInt8(ascii: "\"") else { return String(decoding: value, as: UTF8.self) }
            let inner = UnsafeRawBufferPointer(rebasing: value[1..<(value.count - 1)])
            guard inner.contains(UInt8(ascii: "\\")) else { return String(decoding: inner, as: UTF8.self) }
            return FlatJSON.unescape(inner)
        }

        /// An array of base64 strings, decoded; nil when the value is anything else.
        var frames: [[UInt8]]? {
            var frames: [[UInt8]] = []
            // Most bodies hold two frames (an envelope and a payload): growing from one costs a second allocation.
            frames.reserveCapacity(2)
            let valid = forEachString { text in
                guard let decoded = Base64.decode(text) else { return false }
                frames.append(decoded)
                return true
            }
            return valid ? frames : nil
        }

        /// Calls `body` with each string of an array, undecoded, until it returns false; false when
        /// the value is not an array of strings without escapes, or `body` stopped.
        func forEachString(_ body: (UnsafeRawBufferPointer) -> Bool) -> Bool {
            guard isArray else { return false }
            let end = value.count - 1
            var index = 1
            while index < end {
                let byte = value[index]
                if byte == UInt8(ascii: "\"") {
                    let start = index + 1
                    var close = start
                    while close < end, value[close] != UInt8(ascii: "\"") { close += 1 }
                    guard close < end, body(UnsafeRawBufferPointer(rebasing: value[start..<close])) else {
                        return false
                    }
                    index = close + 1
                } else if byte == UInt8(ascii: ",") || FlatJSON.isSpace(byte) {
                    index += 1
                } else {
                    return false
                }
            }
            return true
        }
    }

    /// Calls `body` with each member of the object in `bytes`, in order, until it returns false.
    /// Returns false when the text is not a flat object or `body` stopped.
    static func forEach(in bytes: UnsafeRawBufferPointer, _ body: (Member) -> Bool) -> Bool {
        let count = bytes.count
        var index = 0
        func skipSpace() {
            while index < count, isSpace(bytes[index]) { index += 1 }
        }
        /// The end of the quoted string starting at `index` (just past its closing quote).
        func stringEnd() -> Int? {
            guard index < count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            var cursor = index + 1
            while cursor < count, bytes[cursor] != UInt8(ascii: "\"") {
                cursor += bytes[cursor] == UInt8(ascii: "\\") ? 2 : 1
            }
            return cursor < count ? cursor + 1 : nil
        }
        skipSpace()
        guard index < count, bytes[index] == UInt8(ascii: "{") else { return false }
        index += 1
        skipSpace()
        if index < count, bytes[index] == UInt8(ascii: "}") { return true }
        while true {
            skipSpace()
            guard let keyEnd = stringEnd() else { return false }
            let key = UnsafeRawBufferPointer(rebasing: bytes[(index + 1)..<(keyEnd - 1)])
            index = keyEnd
            skipSpace()
            guard index < count, bytes[index] == UInt8(ascii: ":") else { return false }
            index += 1
            skipSpace()
            guard index < count else { return false }
            let start = index
            switch bytes[index] {
            case UInt8(ascii: "\""):
                guard let end = stringEnd() else { return false }
                index = end
            case UInt8(ascii: "["):
                while index < count, bytes[index] != UInt8(ascii: "]") { index += 1 }
                guard index < count else { return false }
                index += 1
            default:
                while index < count, bytes[index] != UInt8(ascii: ","), bytes[index] != UInt8(ascii: "}"),
                      !isSpace(bytes[index]) { index += 1 }
            }
            guard body(Member(key: key, value: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))) else {
                return false
            }
            skipSpace()
            guard index < count else { return false }
            if bytes[index] == UInt8(ascii: "}") { return true }
            guard bytes[index] == UInt8(ascii: ",") else { return false }
            index += 1
        }
    }

    fileprivate static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    fileprivate static func unescape(_ bytes: UnsafeRawBufferPointer) -> String? {
        var out = [UInt8]()
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard index + 4 < bytes.count,
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

extension UnsafeRawBufferPointer {
    /// Whether these bytes are `text`'s UTF-8, to test a field without making a string.
    func holds(_ text: StaticString) -> Bool {
        count == text.utf8CodeUnitCount && begins(with: text)
    }

    func begins(with text: StaticString) -> Bool {
        // A one-character literal is stored as a scalar, without a pointer to its UTF-8.
        guard text.hasPointerRepresentation else { return text.withUTF8Buffer { starts(with: $0) } }
        return starts(with: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }
}
