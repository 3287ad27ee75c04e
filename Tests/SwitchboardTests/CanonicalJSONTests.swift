// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import Switchboard

/// The fast encoder must write exactly what `JSONEncoder` writes: logs recorded with either are
/// compared byte for byte when replayed.
@Suite struct CanonicalJSONTests {
    struct Flat: Codable { var name: String; var count: Int; var on: Bool; var note: String? }
    struct Nested: Codable {
        var zeta: [Flat]
        var Alpha: [String: Int]
        var b: [Int?]
        var grid: [[UInt8]]
        var empty: [String]
        var limits: [Int64]
        var big: UInt64
    }
    enum Shape: Codable { case dot, circle(radius: Int), label(String, size: Int8) }
    struct Empty: Codable {}
    struct Timed: Codable { var at: Date; var id: Int }
    struct Measured: Codable { var value: Double; var id: Int }
    struct Blob: Codable { var data: Data }
    /// Writes one key twice: the last value wins, as in Foundation's dictionary.
    struct Twice: Encodable {
        enum Keys: String, CodingKey { case a, b }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .b)
            try container.encode("first", forKey: .a)
            try container.encode("second", forKey: .a)
        }
    }
    /// Opens the same nested containers twice, as a type and its parent sharing an encoder do.
    struct Reopened: Encodable {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(_ name: String) { stringValue = name }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            var meta = container.nestedContainer(keyedBy: Key.self, forKey: Key("meta"))
            try meta.encode(1, forKey: Key("first"))
            var again = container.nestedContainer(keyedBy: Key.self, forKey: Key("meta"))
            try again.encode(2, forKey: Key("second"))
            var list = container.nestedUnkeyedContainer(forKey: Key("list"))
            try list.encode("a")
            var more = container.nestedUnkeyedContainer(forKey: Key("list"))
            try more.encode("b")
            try container.encode(Flat(name: "x", count: 1, on: true, note: nil), forKey: Key("flat"))
            var flat = container.nestedContainer(keyedBy: Key.self, forKey: Key("flat"))
            try flat.encode("added", forKey: Key("extra"))
            // One key spelled two ways that Swift strings hold equal: the first spelling stays.
            try container.encode(1, forKey: Key("caf\u{E9}"))
            try container.encode(2, forKey: Key("cafe\u{301}"))
        }
    }
    /// Swallows the error of a value written its own way by Foundation: the value must still be whole.
    struct Swallowing: Encodable {
        enum Keys: String, CodingKey { case price, id }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try? container.encode(9.99, forKey: .price)
            try container.encode(3, forKey: .id)
        }
    }
    struct Wide: Codable { var big: Int128; var huge: UInt128 }
    class Base: Encodable { var base = 1 }
    final class Derived: Base {
        var own = 2
        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(own, forKey: .own)
            try super.encode(to: container.superEncoder())
        }
        enum CodingKeys: String, CodingKey { case own }
    }

    static let strings = ["", "plain", "quote \" and \\ back", "slash / and url https://x.y/z", "tab\tnew\nline\r",
                          "\u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f}", "é ü 漢字 😇", "{\"json\":[1]}"]

    func same<T: Encodable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected = Array(try Payload.encoder.encode(value))
        let actual = try CanonicalJSON.encode(value)
        #expect(String(decoding: actual, as: UTF8.self) == String(decoding: expected, as: UTF8.self),
                sourceLocation: sourceLocation)
        #expect(actual == expected, sourceLocation: sourceLocation)
    }

    @Test func writesWhatJSONEncoderWrites() throws {
        for text in Self.strings {
            try same(Flat(name: text, count: -42, on: true, note: nil))
            try same(Flat(name: "n", count: Int.max, on: false, note: text))
            try same([text: text, text + "2": "x"])
            try same(text)
        }
        try same(Nested(zeta: [Flat(name: "a", count: 0, on: true, note: "b")],
                        Alpha: ["b": 2, "B": 1, "a": 3, "ab": 4, "a\u{e9}": 5, "aa": 6, "Z": 7, "10": 8, "9": 9],
                        b: [1, nil, 3], grid: [[1, 2], [], [255]], empty: [], limits: [Int64.min, Int64.max, 0],
                        big: UInt64.max))
        try same([Shape.dot, .circle(radius: 3), .label("x", size: -8)])
        try same(Empty())
        try same([Empty(), Empty()])
        try same([1: "one", 20: "twenty", 3: "three"])
        try same(Twice())
        try same(Optional<Int>.none)
        try same(true)
        try same(-7)
    }

    /// What Foundation writes its own way is handed to it.
    @Test func leavesFloatsDatesDataAndSuperEncodersToFoundation() throws {
        try same(Timed(at: Date(timeIntervalSince1970: 1_700_000_000.25), id: 1))
        try same(Measured(value: 0.1 + 0.2, id: 2))
        try same([1.5, 2, -0.0, 1e300])
        try same(Blob(data: Data([0, 1, 2, 250])))
        try same(Derived())
        try same(URL(string: "https://example.com/a?b=c")!)
        try same(Swallowing())
        try same(Wide(big: Int128.min, huge: UInt128.max))
    }

    /// Objects of scalars are written straight into their text and sorted only when out of order.
    struct Scalars: Codable {
        var zulu: String; var alpha: Int8; var mike: UInt64; var bravo: Bool; var yankee: String?
        var charlie: Int64; var x: UInt8; var b: String
    }
    /// Written partly before a member the direct writer leaves to the tree.
    struct ScalarsThenList: Codable { var z: String; var m: Int; var a: [Int]; var after: String }
    /// Writes its names as keys, in the order given, each with its index.
    struct Keys: Encodable {
        let names: [String]
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Reopened.Key.self)
            for (index, name) in names.enumerated() { try container.encode(index, forKey: Reopened.Key(name)) }
        }
    }

    @Test func objectsOfScalarsInAnyOrderAreWrittenAsFoundationWritesThem() throws {
        for text in Self.strings {
            try same(Scalars(zulu: text, alpha: -8, mike: .max, bravo: false, yankee: text, charlie: .min, x: 0,
                             b: "\(text)\"\\"))
            try same(Scalars(zulu: "", alpha: 0, mike: 0, bravo: true, yankee: nil, charlie: 1, x: 255, b: text))
            try same(ScalarsThenList(z: text, m: 1, a: [3, 2], after: text))
            try same(["b": text, "a": text, "c": "\\", "d": "\"", "e": ",", "f": "}"])
        }
        // Keys that need escapes, are not ASCII, repeat, or only look different from an earlier key.
        for names in [["b", "a"], ["a", "b", "a"], ["q\"", "a"], ["b\\", "a"], ["tab\t", "a"], ["\u{7f}", "a"],
                      ["é", "e"], ["caf\u{E9}", "cafe\u{301}"], ["z", "y", "x", "z"], ["", "a", ""], ["a", ""],
                      ["aa", "a", "ab", "A", "_", "0", "~"]] {
            try same(Keys(names: names))
        }
        try same([10: true, 2: false])
        try same(["x": Optional<Int>.none, "a": 1])
    }

    /// The direct writer takes the objects of scalars, and only them: the rest is left to the tree.
    @Test func theDirectWriterTakesObjectsOfScalarsOnly() throws {
        let scalars = Scalars(zulu: "z\"", alpha: 1, mike: 2, bravo: true, yankee: nil, charlie: -3, x: 4, b: "é")
        let taken: [(any Encodable, String)] = [
            (scalars, "Scalars"), (Flat(name: "n", count: 1, on: false, note: "x"), "Flat"),
            (Keys(names: ["b", "a", "c"]), "unsorted keys"), (["b": 1, "a": 2], "a dictionary"), (Empty(), "Empty"),
        ]
        for (value, name) in taken {
            let direct = try #require(try CanonicalJSON.flat(value), "\(name)")
            #expect(direct == Array(try Payload.encoder.encode(value)), "\(name)")
        }
        let left: [(any Encodable, String)] = [
            (ScalarsThenList(z: "z", m: 1, a: [1], after: "a"), "a list member"), ([1, 2], "an array"), ("text", "a string"),
            (Twice(), "a key set twice"), (Keys(names: ["é", "e"]), "a key not ASCII"), (Keys(names: ["q\"", "a"]), "an escaped key"),
            (Nested(zeta: [], Alpha: [:], b: [], grid: [], empty: [], limits: [], big: 0), "nested values"),
            (Measured(value: 1, id: 2), "a float"), (Swallowing(), "a swallowed refusal"), (Derived(), "a super encoder"),
            (Reopened(), "reopened containers"), (Shape.circle(radius: 1), "an enum with a payload"),
        ]
        for (value, name) in left {
            #expect(try CanonicalJSON.flat(value) == nil, "\(name)")
        }
    }

    @Test func reopenedContainersAndEqualKeysAreWrittenAsFoundationWritesThem() throws {
        try same(Reopened())
        var many: [String: Int] = [:]
        for index in 0..<100 { many["key\(index)"] = index }
        try same(many)
    }
}
