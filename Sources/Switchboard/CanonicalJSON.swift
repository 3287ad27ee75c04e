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
/// Objects of scalars, most emitted events, are written directly first (`CanonicalJSON+Flat.swift`).
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

    fileprivate struct Unsupported: Error {}

    fileprivate static func checkSupported(_ type: Any.Type, _ state: State) throws {
        if writtenByFoundation(type) { throw state.refuse() }
    }

    /// Types `JSONEncoder` writes its own way rather than through their `encode(to:)`.
    static func writtenByFoundation(_ type: Any.Type) -> Bool {
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

    static func writeString(_ string: String, to out: inout [UInt8]) {
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
