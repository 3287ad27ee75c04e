// SPDX-License-Identifier: Apache-2.0

extension RecordedEvent {
    /// The event as one line of CloudEvents 1.0 JSON (structured mode).
    ///
    /// `id` is the position (unique within `source`, the log); `subject` the stream. Switchboard's
    /// own fields are extension attributes: `sbposition`, `sbrun`, `sbstreamversion`, `sbmessage`,
    /// `sbcausation`, `sbschema`; positions and versions are decimal strings, since CloudEvents
    /// integers are 32-bit. A JSON payload is embedded as `data` with its insignificant white space
    /// removed (one event, one line), and so is a ``PayloadEncoding/fields`` payload, as the JSON
    /// object it holds; anything else, including a payload marked JSON that does not parse, is
    /// carried as `data_base64`.
    /// - Parameter source: the log's URI, usually ``EventLog/cloudEventSource``.
    public func cloudEventJSON(source: String) -> String {
        var out = "{\"specversion\":\"1.0\""
        func field(_ name: String, _ value: String) {
            out += ",\"\(name)\":"
            JSONText.appendString(value, to: &out)
        }
        field("id", String(position))
        field("source", source)
        field("type", type)
        if !streamID.isEmpty { field("subject", streamID) }
        field("time", timestamp.description)
        field("sbposition", String(position))
        if !runID.isEmpty { field("sbrun", runID) }
        if !streamID.isEmpty { field("sbstreamversion", String(streamVersion)) }
        if !messageID.isEmpty { field("sbmessage", messageID) }
        if !causationID.isEmpty { field("sbcausation", causationID) }
        out += ",\"sbschema\":\(schemaVersion)"
        if payloadEncoding == .json, JSONText.isValid(payload) {
            field("datacontenttype", "application/json")
            out += ",\"data\":" + String(decoding: JSONText.compacted(payload), as: UTF8.self)
        } else if payloadEncoding == .fields, let json = payload.withUnsafeBytes(FieldsPayload.json) {
            field("datacontenttype", "application/json")
            out += ",\"data\":" + String(decoding: json, as: UTF8.self)
        } else if !payload.isEmpty {
            field("datacontenttype", payloadEncoding == .json ? "application/json" : "application/octet-stream")
            field("data_base64", Base64.encode(payload))
        }
        return out + "}"
    }
}

extension EventLog {
    /// The URI that names this log as the `source` of its CloudEvents.
    public var cloudEventSource: String { "urn:switchboard:log:\(identifier)" }
}

/// Minimal JSON text helpers, kept here so the core module needs no Foundation.
package enum JSONText {
    package static func appendString(_ value: String, to out: inout String) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// The same escaping as ``appendString(_:to:)-(_,String)``, written as UTF-8 bytes: bytes of
    /// 0x80 and up are never quotes or control characters, so they pass as they are.
    package static func appendString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\\"))
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case ..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Valid JSON text without the white space outside strings.
    static func compacted(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(where: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else { return bytes }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                out.append(byte)
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
                continue
            } else {
                if byte == UInt8(ascii: "\"") { inString = true }
                out.append(byte)
            }
        }
        return out
    }

    /// Whether `bytes` hold exactly one JSON value (RFC 8259), surrounded by optional white space.
    package static func isValid(_ bytes: [UInt8]) -> Bool {
        // ASCII needs no validator (which instantiates generic metadata on every call).
        guard bytes.allSatisfy({ $0 < 0x80 }) || String(validating: bytes, as: UTF8.self) != nil else { return false }
        var parser = Recognizer(bytes: bytes)
        parser.skipSpace()
        guard parser.value(depth: 0) else { return false }
        parser.skipSpace()
        return parser.index == bytes.count
    }

    private struct Recognizer {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func literal(_ text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            for offset in 0..<count where bytes[index + offset] != text.utf8Start[offset] { return false }
            index += count
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard depth < 512, let byte = current else { return false }
            switch byte {
            case UInt8(ascii: "{"): return container(close: UInt8(ascii: "}"), keyed: true, depth: depth)
            case UInt8(ascii: "["): return container(close: UInt8(ascii: "]"), keyed: false, depth: depth)
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default: return number()
            }
        }

        mutating func container(close: UInt8, keyed: Bool, depth: Int) -> Bool {
            index += 1
            skipSpace()
            if current == close {
                index += 1
                return true
            }
            while true {
                if keyed {
                    guard current == UInt8(ascii: "\""), string() else { return false }
                    skipSpace()
                    guard current == UInt8(ascii: ":") else { return false }
                    index += 1
                    skipSpace()
                }
                guard value(depth: depth + 1) else { return false }
                skipSpace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    skipSpace()
                } else if current == close {
                    index += 1
                    return true
                } else {
                    return false
                }
            }
        }

        mutating func string() -> Bool {
            index += 1
            while let byte = current {
                index += 1
                switch byte {
                case UInt8(ascii: "\""): return true
                case UInt8(ascii: "\\"):
                    guard let escaped = current else { return false }
                    index += 1
                    if escaped == UInt8(ascii: "u") {
                        for _ in 0..<4 {
                            guard let hex = current, isHexDigit(hex) else { return false }
                            index += 1
                        }
                    } else if !"\"\\/bfnrt".utf8.contains(escaped) {
                        return false
                    }
                case 0..<0x20: return false
                default: continue
                }
            }
            return false
        }

        mutating func number() -> Bool {
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, isDigit(first) else { return false }
            index += 1
            if first != UInt8(ascii: "0") { digits() }
            if current == UInt8(ascii: ".") {
                index += 1
                guard let next = current, isDigit(next) else { return false }
                digits()
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard let next = current, isDigit(next) else { return false }
                digits()
            }
            return true
        }

        mutating func digits() {
            while let byte = current, isDigit(byte) { index += 1 }
        }

        func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
        func isHexDigit(_ byte: UInt8) -> Bool {
            isDigit(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
        }
    }
}

/// Lowercase hexadecimal text of bytes.
package enum Hex {
    /// Lowercase hex, written straight into the string: the router renders a client address per message.
    /// Not generic: unspecialized iteration across modules allocated once per byte.
    package static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes(encode)
    }

    package static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var index = 0
            for byte in bytes {
                out[index] = digit(byte >> 4)
                out[index + 1] = digit(byte & 0x0F)
                index += 2
            }
            return index
        }
    }

    static func digit(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 + value : 0x57 + value
    }
}

/// RFC 4648 base64 with padding.
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    package static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = UInt32(bytes[index])
            let b1 = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
            let b2 = index + 2 < bytes.count ? UInt32(bytes[index + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(triple >> 18 & 63)])
            out.append(alphabet[Int(triple >> 12 & 63)])
            out.append(index + 1 < bytes.count ? alphabet[Int(triple >> 6 & 63)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? alphabet[Int(triple & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// 0-63 for the alphabet, 64 for "=", 255 for anything else.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 255, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = UInt8(index) }
        table[Int(UInt8(ascii: "="))] = 64
        return table
    }()

    /// Decodes padded standard base64; nil for anything else.
    package static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        if let decoded = text.withContiguousStorageIfAvailable({ decode(UnsafeRawBufferPointer($0)) }) {
            return decoded
        }
        return decode(Array(text))
    }

    /// Decodes padded standard base64 from raw bytes (replay reads them straight from the log).
    package static func decode(_ text: UnsafeRawBufferPointer) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var valid = true
        let decoded = [UInt8](unsafeUninitializedCapacity: text.count / 4 * 3) { out, initialized in
            let written = decode(text, to: out)
            valid = written != nil
            initialized = written ?? 0
        }
        return valid ? decoded : nil
    }

    /// Decodes padded standard base64 into `out`, replacing what it held but keeping its storage:
    /// a reader decoding many short-lived frames allocates once. False (and `out` empty) for anything else.
    package static func decode(_ text: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        guard text.count % 4 == 0 else { return false }
        out.append(contentsOf: repeatElement(0, count: text.count / 4 * 3))
        let written = out.withUnsafeMutableBufferPointer { decode(text, to: $0) }
        out.removeLast(out.count - (written ?? 0))
        return written != nil
    }

    /// Decodes `text` (a multiple of 4 long) into `out`, which holds at least 3/4 of its length;
    /// returns the decoded length, nil when the text is not padded standard base64.
    private static func decode(_ text: UnsafeRawBufferPointer, to out: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        let count = text.count
        guard count > 0 else { return 0 }
        let padding = text[count - 1] == UInt8(ascii: "=") ? (text[count - 2] == UInt8(ascii: "=") ? 2 : 1) : 0
        return values.withUnsafeBufferPointer { table -> Int? in
            var write = 0
            var read = 0
            while read < count {
                let a = table[Int(text[read])], b = table[Int(text[read + 1])]
                let c = table[Int(text[read + 2])], d = table[Int(text[read + 3])]
                // "=" (64) only as the last one or two characters of the text.
                let last = read + 4 == count
                if (a | b) >= 64 || c == 255 || d == 255 || (!last && (c | d) >= 64) || (c == 64 && d != 64) {
                    return nil
                }
                let quad = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c & 63) << 6 | UInt32(d & 63)
                out[write] = UInt8(truncatingIfNeeded: quad >> 16)
                out[write + 1] = UInt8(truncatingIfNeeded: quad >> 8)
                out[write + 2] = UInt8(truncatingIfNeeded: quad)
                write += 3
                read += 4
            }
            return write - padding
        }
    }
}
