// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

extension PayloadEncoding {
    /// A flat object in Switchboard's binary field layout (``FieldsPayload``), shown as JSON: the
    /// router's message events, whose bodies are then stored as they came rather than as base64.
    public static let fields = PayloadEncoding(rawValue: 2)
}

extension RecordedEvent {
    /// The payload as JSON text: a ``PayloadEncoding/fields`` payload as the object it holds,
    /// message bodies as arrays of base64 strings; any other payload as it is.
    public var jsonPayload: [UInt8] {
        guard payloadEncoding == .fields else { return payload }
        return payload.withUnsafeBytes { FieldsPayload.json($0) } ?? payload
    }
}

/// A flat object of strings, integers and lists of byte strings, in a form read without parsing
/// text or decoding base64: replay reads one per logged message.
///
/// A format byte (1), the field count (`u16 LE`: a payload cut between two fields is refused, not
/// taken for a shorter one), then each field in order: `u8 kind | u8 key length | key | value`,
/// where the value of kind 1 (a string) is `u32 LE length | UTF-8`, of kind 2 (an integer)
/// `i64 LE`, and of kind 3 (byte strings) `u32 LE count`, then `u32 LE length | bytes` for each.
package enum FieldsPayload {
    static let format: UInt8 = 1

    enum Kind: UInt8 {
        case string = 1, integer = 2, frames = 3
    }

    package struct Writer {
        package private(set) var bytes: [UInt8]
        private var count: UInt16 = 0

        package init(capacity: Int = 128) {
            // Reserved before the first byte: an array literal first would allocate twice.
            bytes = []
            bytes.reserveCapacity(max(capacity, 3))
            bytes.append(FieldsPayload.format)
            bytes.append(0)
            bytes.append(0)
        }

        private mutating func key(_ name: StaticString, _ kind: Kind) {
            precondition(name.utf8CodeUnitCount <= 255, "a field name is at most 255 bytes")
            precondition(count < UInt16.max, "at most 65,535 fields")
            count += 1
            bytes[1] = UInt8(truncatingIfNeeded: count)
            bytes[2] = UInt8(truncatingIfNeeded: count >> 8)
            bytes.append(kind.rawValue)
            bytes.append(UInt8(name.utf8CodeUnitCount))
            // Not `utf8Start`: a one-character literal is stored as a scalar, without a pointer.
            name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        }

        private mutating func length(_ count: Int) {
            withUnsafeBytes(of: UInt32(count).littleEndian) { bytes.append(contentsOf: $0) }
        }

        package mutating func string(_ name: StaticString, _ value: String) {
            key(name, .string)
            length(value.utf8.count)
            bytes.append(contentsOf: value.utf8)
        }

        /// `value` as a string of lowercase hex digits, written in place: no string is made of it.
        package mutating func hexString(_ name: StaticString, _ value: [UInt8]) {
            key(name, .string)
            length(value.count * 2)
            for byte in value {
                bytes.append(Hex.digit(byte >> 4))
                bytes.append(Hex.digit(byte & 0x0F))
            }
        }

        package mutating func integer(_ name: StaticString, _ value: Int) {
            key(name, .integer)
            withUnsafeBytes(of: Int64(value).littleEndian) { bytes.append(contentsOf: $0) }
        }

        /// Byte strings of at most 4 GiB each, as the log's payload limit keeps them.
        package mutating func frames(_ name: StaticString, _ frames: [[UInt8]]) {
            key(name, .frames)
            length(frames.count)
            for frame in frames {
                length(frame.count)
                bytes.append(contentsOf: frame)
            }
        }
    }

    /// One field, read in place.
    package struct Field {
        package let key: UnsafeRawBufferPointer
        let kind: Kind
        /// The string's bytes, the integer's 8 bytes, or the byte strings with their count and lengths.
        let value: UnsafeRawBufferPointer

        package func keyIs(_ name: StaticString) -> Bool {
            guard key.count == name.utf8CodeUnitCount else { return false }
            // A one-character literal is stored as a scalar, without a pointer to its UTF-8.
            guard name.hasPointerRepresentation else { return name.withUTF8Buffer { key.elementsEqual($0) } }
            guard let base = key.baseAddress else { return true }
            return memcmp(base, name.utf8Start, key.count) == 0
        }

        package var string: String? {
            kind == .string ? String(decoding: value, as: UTF8.self) : nil
        }

        package var integer: Int64? {
            kind == .integer ? Int64(littleEndian: value.loadUnaligned(as: Int64.self)) : nil
        }

        /// Calls `body` with each byte string in order until it returns false; false when the field
        /// holds none, or `body` stopped. The lengths were checked when the field was read.
        package func forEachFrame(_ body: (UnsafeRawBufferPointer) -> Bool) -> Bool {
            guard kind == .frames else { return false }
            var at = 4
            for _ in 0..<FieldsPayload.length(value, at: 0) {
                let count = FieldsPayload.length(value, at: at)
                guard body(UnsafeRawBufferPointer(rebasing: value[(at + 4)..<(at + 4 + count)])) else { return false }
                at += 4 + count
            }
            return true
        }

        package var frames: [[UInt8]]? {
            var frames: [[UInt8]] = []
            guard forEachFrame({ frames.append(Array($0)); return true }) else { return nil }
            return frames
        }
    }

    fileprivate static func length(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    /// Calls `body` with each field in order until it returns false. False when the payload is not
    /// in this layout (every length is checked against the payload's end first, and the fields must
    /// end where it does), or `body` stopped.
    package static func forEach(in payload: UnsafeRawBufferPointer, _ body: (Field) -> Bool) -> Bool {
        guard payload.count >= 3, payload[0] == format else { return false }
        let fields = Int(payload[1]) | Int(payload[2]) << 8
        var at = 3
        let end = payload.count
        for _ in 0..<fields {
            guard end - at >= 2, let kind = Kind(rawValue: payload[at]) else { return false }
            let keyCount = Int(payload[at + 1])
            let keyStart = at + 2
            let valueStart = keyStart + keyCount
            guard valueStart <= end else { return false }
            var valueEnd: Int
            var contentStart = valueStart
            switch kind {
            case .string:
                guard end - valueStart >= 4 else { return false }
                contentStart = valueStart + 4
                valueEnd = contentStart + length(payload, at: valueStart)
            case .integer:
                valueEnd = valueStart + 8
            case .frames:
                guard end - valueStart >= 4 else { return false }
                valueEnd = valueStart + 4
                for _ in 0..<length(payload, at: valueStart) {
                    guard end - valueEnd >= 4 else { return false }
                    valueEnd += 4 + length(payload, at: valueEnd)
                    guard valueEnd <= end else { return false }
                }
            }
            guard valueEnd <= end else { return false }
            let field = Field(key: UnsafeRawBufferPointer(rebasing: payload[keyStart..<valueStart]), kind: kind,
                              value: UnsafeRawBufferPointer(rebasing: payload[contentStart..<valueEnd]))
            guard body(field) else { return false }
            at = valueEnd
        }
        return at == end
    }

    /// The object as JSON text, fields in their order: strings as strings, integers as numbers,
    /// byte strings as arrays of base64 strings. Nil when the payload is not in this layout.
    package static func json(_ payload: UnsafeRawBufferPointer) -> [UInt8]? {
        var out = "{"
        let valid = forEach(in: payload) { field in
            if out.utf8.count > 1 { out += "," }
            JSONText.appendString(String(decoding: field.key, as: UTF8.self), to: &out)
            out += ":"
            switch field.kind {
            case .string:
                JSONText.appendString(String(decoding: field.value, as: UTF8.self), to: &out)
            case .integer:
                out += String(field.integer ?? 0)
            case .frames:
                out += "["
                var first = true
                _ = field.forEachFrame { frame in
                    out += first ? "\"" : ",\""
                    first = false
                    out += Base64.encode(Array(frame)) + "\""
                    return true
                }
                out += "]"
            }
            return true
        }
        return valid ? Array((out + "}").utf8) : nil
    }
}
