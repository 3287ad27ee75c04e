// SPDX-License-Identifier: Apache-2.0

extension CanonicalJSON {
    /// The text of `value` when it is an object the direct writer takes (``FlatEncoder``); nil
    /// when it is not, and the tree must write it.
    static func flat<T: Encodable>(_ value: T) throws -> [UInt8]? {
        guard !writtenByFoundation(T.self) else { return nil }
        let flat = FlatEncoder()
        do {
            try value.encode(to: flat)
        } catch where flat.text.gaveUp {
            return nil
        }
        return flat.text.finish()
    }
}

/// The common case written straight into its text: one object whose keys are plain ASCII and whose
/// values are strings, integers, booleans and nulls. Members are sorted only when they came out of
/// order; anything else makes the encoder give up, and the tree writes the value instead.
private final class FlatEncoder: Encoder {
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    /// All state in one value: each call then checks exclusive access to the encoder once, not per byte.
    var text = FlatText()

    struct GaveUp: Error {}

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        text.open()
        return KeyedEncodingContainer(FlatContainer<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        text.gaveUp = true
        return Refusing<FlatText.NoKey>()
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        text.gaveUp = true
        return Refusing<FlatText.NoKey>()
    }

    /// An encoder that writes nothing, for a super encoder asked of one that gave up.
    static func refusing() -> FlatEncoder {
        let encoder = FlatEncoder()
        encoder.text.gaveUp = true
        return encoder
    }
}

/// What the direct writer hands out for what it does not write, having given up: every write
/// throws at once, so the value's own code stops and the tree encodes it once, not twice.
private struct Refusing<Key: CodingKey>: KeyedEncodingContainerProtocol, UnkeyedEncodingContainer,
    SingleValueEncodingContainer
{
    var codingPath: [any CodingKey] { [] }
    var count: Int { 0 }

    mutating func encodeNil(forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Bool, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: String, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Double, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Float, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int8, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int16, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int32, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int64, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int128, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { throw FlatEncoder.GaveUp() }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { throw FlatEncoder.GaveUp() }

    mutating func encodeNil() throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Bool) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: String) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Double) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Float) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int8) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int16) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int32) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int64) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: Int128) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt8) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt16) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt32) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt64) throws { throw FlatEncoder.GaveUp() }
    mutating func encode(_ value: UInt128) throws { throw FlatEncoder.GaveUp() }
    mutating func encode<T: Encodable>(_ value: T) throws { throw FlatEncoder.GaveUp() }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey> { KeyedEncodingContainer(Refusing<NestedKey>()) }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { self }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey> { KeyedEncodingContainer(Refusing<NestedKey>()) }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { self }
    mutating func superEncoder() -> any Encoder { FlatEncoder.refusing() }
    mutating func superEncoder(forKey key: Key) -> any Encoder { FlatEncoder.refusing() }
}

private struct FlatText {
    /// The key type of containers that have none.
    struct NoKey: CodingKey {
        var stringValue: String { "" }
        var intValue: Int? { nil }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { nil }
    }

    private var out: [UInt8] = []
    /// Set by what this encoder does not write; the value is then written by the tree.
    var gaveUp = false
    private var opened = false
    private var members = 0
    private var ordered = true
    /// Where the last member's key lies in `out`.
    private var lastKey = 0..<0

    mutating func open() {
        // A container reopened, as a type and its parent sharing an encoder do, merges in the tree.
        if opened { gaveUp = true }
        opened = true
        out.reserveCapacity(64)
        out.append(UInt8(ascii: "{"))
    }

    mutating func bare(_ key: String, _ value: String) {
        if self.key(key) { out.append(contentsOf: value.utf8) }
    }

    mutating func string(_ key: String, _ value: String) {
        if self.key(key) { CanonicalJSON.writeString(value, to: &out) }
    }

    mutating func number(_ key: String, _ value: Int64) {
        number(key, value.magnitude, negative: value < 0)
    }

    /// Digits written in place: `description` makes a string of each number.
    mutating func number(_ key: String, _ magnitude: UInt64, negative: Bool = false) {
        guard self.key(key) else { return }
        if negative { out.append(UInt8(ascii: "-")) }
        let start = out.count
        var rest = magnitude
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10))
            rest /= 10
        } while rest > 0
        var (low, high) = (start, out.count - 1)
        while low < high {
            out.swapAt(low, high)
            (low, high) = (low + 1, high - 1)
        }
    }

    /// Writes a member's key; false, having given up, when the key needs escapes or is not ASCII
    /// (strings Swift holds equal may then differ in bytes).
    private mutating func key(_ key: String) -> Bool {
        guard !gaveUp else { return false }
        if members > 0 { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        let start = out.count
        for byte in key.utf8 {
            guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") else {
                gaveUp = true
                return false
            }
            out.append(byte)
        }
        let range = start..<out.count
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
        if members > 0, ordered, !out[lastKey].lexicographicallyPrecedes(out[range]) { ordered = false }
        lastKey = range
        members += 1
        return true
    }

    /// The text, or nil when the tree must write the value.
    mutating func finish() -> [UInt8]? {
        guard opened, !gaveUp else { return nil }
        out.append(UInt8(ascii: "}"))
        return ordered ? out : sorted()
    }

    /// The members in key order, found again in the text: keys hold no quotes, and a value is a
    /// string, which ends at its first unescaped quote, or a bare token, which holds no comma.
    private func sorted() -> [UInt8]? {
        var spans: [(key: Range<Int>, member: Range<Int>)] = []
        spans.reserveCapacity(members)
        var at = 1
        while at < out.count - 1 {
            let start = at
            var end = at + 1
            while out[end] != UInt8(ascii: "\"") { end += 1 }
            let key = (start + 1)..<end
            at = end + 2
            if out[at] == UInt8(ascii: "\"") {
                at += 1
                while out[at] != UInt8(ascii: "\"") { at += out[at] == UInt8(ascii: "\\") ? 2 : 1 }
                at += 1
            } else {
                while at < out.count - 1, out[at] != UInt8(ascii: ",") { at += 1 }
            }
            spans.append((key, start..<at))
            at += 1
        }
        spans.sort { out[$0.key].lexicographicallyPrecedes(out[$1.key]) }
        var text: [UInt8] = []
        text.reserveCapacity(out.count)
        text.append(UInt8(ascii: "{"))
        for (index, span) in spans.enumerated() {
            // A key set twice keeps its first spelling and takes the new value: the tree's rules.
            if index > 0 {
                guard out[spans[index - 1].key] != out[span.key] else { return nil }
                text.append(UInt8(ascii: ","))
            }
            text.append(contentsOf: out[span.member])
        }
        text.append(UInt8(ascii: "}"))
        return text
    }
}

private struct FlatContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: FlatEncoder
    var codingPath: [any CodingKey] { [] }

    /// Hands the value to the tree: thrown, so that the value's own code stops writing.
    private func giveUp() -> FlatEncoder.GaveUp {
        encoder.text.gaveUp = true
        return FlatEncoder.GaveUp()
    }

    mutating func encodeNil(forKey key: Key) throws { encoder.text.bare(key.stringValue, "null") }
    mutating func encode(_ value: Bool, forKey key: Key) throws {
        encoder.text.bare(key.stringValue, value ? "true" : "false")
    }
    mutating func encode(_ value: String, forKey key: Key) throws { encoder.text.string(key.stringValue, value) }
    mutating func encode(_ value: Int, forKey key: Key) throws { encoder.text.number(key.stringValue, Int64(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { encoder.text.number(key.stringValue, Int64(value)) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { encoder.text.number(key.stringValue, Int64(value)) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { encoder.text.number(key.stringValue, Int64(value)) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { encoder.text.number(key.stringValue, value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { encoder.text.number(key.stringValue, UInt64(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { encoder.text.number(key.stringValue, UInt64(value)) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws {
        encoder.text.number(key.stringValue, UInt64(value))
    }
    mutating func encode(_ value: UInt32, forKey key: Key) throws {
        encoder.text.number(key.stringValue, UInt64(value))
    }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { encoder.text.number(key.stringValue, value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { throw giveUp() }
    mutating func encode(_ value: Float, forKey key: Key) throws { throw giveUp() }
    mutating func encode(_ value: Int128, forKey key: Key) throws { throw giveUp() }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { throw giveUp() }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        switch value {
        case let text as String: try encode(text, forKey: key)
        case let flag as Bool: try encode(flag, forKey: key)
        case let number as Int: try encode(number, forKey: key)
        default: throw giveUp()
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        encoder.text.gaveUp = true
        return KeyedEncodingContainer(Refusing<NestedKey>())
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        encoder.unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        encoder.text.gaveUp = true
        return FlatEncoder.refusing()
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        superEncoder()
    }
}
