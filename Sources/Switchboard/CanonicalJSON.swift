// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// JSON text of `Encodable` values, byte for byte what Foundation's `JSONEncoder` writes with
/// `[.sortedKeys, .withoutEscapingSlashes]` (keys in UTF-8 order, no spaces), in a fraction of
/// its time: every emitted event is encoded when it is recorded and again when it is replayed.
///
/// Strings, integers, booleans, nulls, objects and arrays are written here. Anything whose text
/// Foundation decides its own way (floating point, 128-bit integers, `Date`, `Data`, `URL`,
/// `Decimal`, super encoders, values that encode nothing) goes to `JSONEncoder` instead, whole.
enum CanonicalJSON {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        if let text = try flat(value) { return text }
        do {
            let encoder = TreeEncoder(codingPath: [])
            try Self.checkSupported(T.self, encoder.state)
            try value.encode(to: encoder)
            guard let tree = encoder.tree, !encoder.state.unsupported else { throw Unsupported() }
            var out: [UInt8] = []
            out.reserveCapacity(64)
            tree.write(to: &out)
            return out
        } catch is Unsupported {
            return Array(try Payload.encoder.encode(value))
        }
    }

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

    fileprivate struct Unsupported: Error {}

    fileprivate static func checkSupported(_ type: Any.Type, _ state: State) throws {
        if writtenByFoundation(type) { throw state.refuse() }
    }

    /// Types `JSONEncoder` writes its own way rather than through their `encode(to:)`.
    private static func writtenByFoundation(_ type: Any.Type) -> Bool {
        type == Date.self || type == Data.self || type == URL.self || type == Decimal.self || type == Double.self
            || type == Float.self
    }

    /// What an encoder produced; objects and arrays are boxes, so nested containers can fill them later.
    fileprivate enum Tree {
        case text([UInt8])
        /// A number or literal, written as it is: most are short enough for a string without storage.
        case bare(String)
        case object(ObjectBox)
        case array(ArrayBox)

        /// The object or array a container reopened for the same value or key goes on filling.
        var object: ObjectBox? { if case .object(let box) = self { box } else { nil } }
        var array: ArrayBox? { if case .array(let box) = self { box } else { nil } }

        func write(to out: inout [UInt8]) {
            switch self {
            case .text(let bytes):
                out.append(contentsOf: bytes)
            case .bare(let text):
                out.append(contentsOf: text.utf8)
            case .object(let box):
                out.append(UInt8(ascii: "{"))
                let members = box.members.count < 2 ? box.members : box.members.sorted {
                    $0.key.utf8.lexicographicallyPrecedes($1.key.utf8)
                }
                for (index, member) in members.enumerated() {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    CanonicalJSON.writeString(member.key, to: &out)
                    out.append(UInt8(ascii: ":"))
                    member.value.write(to: &out)
                }
                out.append(UInt8(ascii: "}"))
            case .array(let box):
                out.append(UInt8(ascii: "["))
                for (index, element) in box.elements.enumerated() {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    element.write(to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
        }
    }

    /// An object's members with a dictionary's rules, as Foundation keeps them: a key set again
    /// keeps its first spelling and takes the new value.
    fileprivate final class ObjectBox {
        private(set) var members: [(key: String, value: Tree)] = []
        /// Positions by key, once there are too many members to search.
        private var positions: [String: Int] = [:]

        func position(of key: String) -> Int? {
            if members.count <= 16 { return members.firstIndex { $0.key == key } }
            if positions.count != members.count {
                positions = Dictionary(members.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { first, _ in first })
            }
            return positions[key]
        }

        func set(_ key: String, _ value: Tree) {
            if let at = position(of: key) {
                members[at].value = value
            } else {
                members.append((key, value))
                if !positions.isEmpty { positions[key] = members.count - 1 }
            }
        }

        /// The object or array already under `key`, as Foundation reopens it for a nested container.
        func value(of key: String) -> Tree? {
            position(of: key).map { members[$0].value }
        }
    }

    fileprivate final class ArrayBox {
        var elements: [Tree] = []
    }

    /// Set by the container calls that cannot throw.
    fileprivate final class State {
        var unsupported = false

        /// Marks the whole value for `JSONEncoder`: the error may be caught by the value's own code.
        func refuse() -> Unsupported {
            unsupported = true
            return Unsupported()
        }
    }

    fileprivate static func writeString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    fileprivate static func string(_ value: String) -> Tree {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count + 2)
        writeString(value, to: &out)
        return .text(out)
    }

    fileprivate static func number(_ value: some BinaryInteger) -> Tree { .bare(value.description) }

    fileprivate static func boolean(_ value: Bool) -> Tree { .bare(value ? "true" : "false") }

    fileprivate static var null: Tree { .bare("null") }

    /// The tree of any value, through its own `encode(to:)` for all but the scalars written here.
    fileprivate static func tree<T: Encodable>(_ value: T, path: [any CodingKey], state: State) throws -> Tree {
        switch value {
        case let text as String: return string(text)
        case let flag as Bool: return boolean(flag)
        case let number as Int: return self.number(number)
        default: break
        }
        try checkSupported(T.self, state)
        let encoder = TreeEncoder(codingPath: path, state: state)
        try value.encode(to: encoder)
        guard let tree = encoder.tree else { throw state.refuse() }
        return tree
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

private final class TreeEncoder: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let state: CanonicalJSON.State
    var tree: CanonicalJSON.Tree?

    init(codingPath: [any CodingKey], state: CanonicalJSON.State = CanonicalJSON.State()) {
        self.codingPath = codingPath
        self.state = state
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let box = tree?.object ?? start(CanonicalJSON.ObjectBox(), as: CanonicalJSON.Tree.object)
        return KeyedEncodingContainer(KeyedContainer<Key>(box: box, codingPath: codingPath, state: state))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let box = tree?.array ?? start(CanonicalJSON.ArrayBox(), as: CanonicalJSON.Tree.array)
        return UnkeyedContainer(box: box, codingPath: codingPath, state: state)
    }

    /// Makes `box` the value; a value already started as something else is not written here.
    private func start<Box>(_ box: Box, as wrap: (Box) -> CanonicalJSON.Tree) -> Box {
        if tree != nil { state.unsupported = true }
        tree = wrap(box)
        return box
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(encoder: self)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: CanonicalJSON.ObjectBox
    let codingPath: [any CodingKey]
    let state: CanonicalJSON.State

    private func put(_ tree: CanonicalJSON.Tree, _ key: Key) {
        box.set(key.stringValue, tree)
    }

    mutating func encodeNil(forKey key: Key) throws { put(CanonicalJSON.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(CanonicalJSON.boolean(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(CanonicalJSON.string(value), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(CanonicalJSON.number(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { throw state.refuse() }
    mutating func encode(_ value: Float, forKey key: Key) throws { throw state.refuse() }
    mutating func encode(_ value: Int128, forKey key: Key) throws { throw state.refuse() }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { throw state.refuse() }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        put(try CanonicalJSON.tree(value, path: codingPath + [key], state: state), key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        let nested = box.value(of: key.stringValue)?.object
            ?? nest(CanonicalJSON.ObjectBox(), as: CanonicalJSON.Tree.object, key)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(box: nested, codingPath: codingPath + [key],
                                                                state: state))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = box.value(of: key.stringValue)?.array
            ?? nest(CanonicalJSON.ArrayBox(), as: CanonicalJSON.Tree.array, key)
        return UnkeyedContainer(box: nested, codingPath: codingPath + [key], state: state)
    }

    private mutating func nest<Box>(_ nested: Box, as wrap: (Box) -> CanonicalJSON.Tree, _ key: Key) -> Box {
        put(wrap(nested), key)
        return nested
    }

    mutating func superEncoder() -> any Encoder {
        state.unsupported = true
        return TreeEncoder(codingPath: codingPath, state: state)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        state.unsupported = true
        return TreeEncoder(codingPath: codingPath, state: state)
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let box: CanonicalJSON.ArrayBox
    let codingPath: [any CodingKey]
    let state: CanonicalJSON.State
    var count: Int { box.elements.count }

    private struct Index: CodingKey {
        var stringValue: String { "Index \(intValue ?? 0)" }
        var intValue: Int?
        init(_ index: Int) { intValue = index }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { self.intValue = intValue }
    }

    mutating func encodeNil() throws { box.elements.append(CanonicalJSON.null) }
    mutating func encode(_ value: Bool) throws { box.elements.append(CanonicalJSON.boolean(value)) }
    mutating func encode(_ value: String) throws { box.elements.append(CanonicalJSON.string(value)) }
    mutating func encode(_ value: Int) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Int8) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Int16) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Int32) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Int64) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt8) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt16) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt32) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt64) throws { box.elements.append(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Double) throws { throw state.refuse() }
    mutating func encode(_ value: Float) throws { throw state.refuse() }
    mutating func encode(_ value: Int128) throws { throw state.refuse() }
    mutating func encode(_ value: UInt128) throws { throw state.refuse() }

    mutating func encode<T: Encodable>(_ value: T) throws {
        box.elements.append(try CanonicalJSON.tree(value, path: codingPath + [Index(count)], state: state))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey>
    {
        let nested = CanonicalJSON.ObjectBox()
        box.elements.append(.object(nested))
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(box: nested, codingPath: codingPath + [Index(count)],
                                                                state: state))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = CanonicalJSON.ArrayBox()
        box.elements.append(.array(nested))
        return UnkeyedContainer(box: nested, codingPath: codingPath + [Index(count)], state: state)
    }

    mutating func superEncoder() -> any Encoder {
        state.unsupported = true
        return TreeEncoder(codingPath: codingPath, state: state)
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let encoder: TreeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func set(_ tree: CanonicalJSON.Tree) {
        if encoder.tree != nil { encoder.state.unsupported = true }
        encoder.tree = tree
    }

    mutating func encodeNil() throws { set(CanonicalJSON.null) }
    mutating func encode(_ value: Bool) throws { set(CanonicalJSON.boolean(value)) }
    mutating func encode(_ value: String) throws { set(CanonicalJSON.string(value)) }
    mutating func encode(_ value: Int) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Int8) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Int16) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Int32) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Int64) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt8) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt16) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt32) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: UInt64) throws { set(CanonicalJSON.number(value)) }
    mutating func encode(_ value: Double) throws { throw encoder.state.refuse() }
    mutating func encode(_ value: Float) throws { throw encoder.state.refuse() }
    mutating func encode(_ value: Int128) throws { throw encoder.state.refuse() }
    mutating func encode(_ value: UInt128) throws { throw encoder.state.refuse() }

    mutating func encode<T: Encodable>(_ value: T) throws {
        set(try CanonicalJSON.tree(value, path: codingPath, state: encoder.state))
    }
}
