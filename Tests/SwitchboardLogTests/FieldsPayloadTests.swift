// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import SwitchboardLog
import TestSupport

/// The binary field layout the router writes its message events in: read back field by field, and
/// shown as the JSON object the same event held before the layout existed.
@Suite struct FieldsPayloadTests {
    static func sample() -> [UInt8] {
        var fields = FieldsPayload.Writer()
        fields.string("service", "echo \"quoted\" é")
        fields.integer("attempt", -3)
        fields.frames("body", [[0, 1, 255], [], Array("{\"a\":1}".utf8)])
        fields.string("empty", "")
        fields.frames("none", [])
        return fields.bytes
    }

    @Test func fieldsReadBackInOrder() throws {
        var seen: [String] = []
        let valid = Self.sample().withUnsafeBytes { raw in
            FieldsPayload.forEach(in: raw) { field in
                let key = String(decoding: field.key, as: UTF8.self)
                switch key {
                case "service": seen.append("\(key)=\(field.string ?? "?")")
                case "attempt": seen.append("\(key)=\(field.integer.map(String.init) ?? "?")")
                case "body", "none": seen.append("\(key)=\(field.frames.map { "\($0)" } ?? "?")")
                default: seen.append("\(key)=\(field.string ?? "?")")
                }
                #expect(field.keyIs("service") == (key == "service"))
                // A field reads only as what it holds.
                #expect((field.string != nil) == (key == "service" || key == "empty"))
                #expect((field.integer != nil) == (key == "attempt"))
                #expect((field.frames != nil) == (key == "body" || key == "none"))
                return true
            }
        }
        #expect(valid)
        #expect(seen == ["service=echo \"quoted\" é", "attempt=-3", "body=[[0, 1, 255], [], [123, 34, 97, 34, 58, 49, 125]]",
                         "empty=", "none=[]"])
    }

    /// A hex field is the string `Hex.encode` makes of the bytes, written without making it.
    @Test(arguments: [[], [0], [0x0F, 0xF0, 0xAB], Array(0...255)] as [[UInt8]])
    func hexStringsReadAsTheHexOfTheirBytes(bytes: [UInt8]) {
        var fields = FieldsPayload.Writer()
        fields.hexString("client", bytes)
        fields.integer("after", 1)
        var read: [String] = []
        let valid = fields.bytes.withUnsafeBytes { raw in
            FieldsPayload.forEach(in: raw) { field in
                read.append(field.string ?? field.integer.map(String.init) ?? "?")
                return true
            }
        }
        #expect(valid && read == [Hex.encode(bytes), "1"])
        #expect(read.first?.utf8.count == 2 * bytes.count)
        if bytes == [0x0F, 0xF0, 0xAB] { #expect(read.first == "0ff0ab") }
    }

    @Test func showsAsTheJSONObjectItHolds() throws {
        let json = try #require(Self.sample().withUnsafeBytes(FieldsPayload.json))
        #expect(String(decoding: json, as: UTF8.self)
            == #"{"service":"echo \"quoted\" é","attempt":-3,"body":["AAH/","","eyJhIjoxfQ=="],"empty":"","none":[]}"#)
        let event = RecordedEvent(
            position: 7, type: "request.received", schemaVersion: 1, runID: "r", streamID: "", streamVersion: 0,
            messageID: "m", causationID: "", timestamp: Timestamp(nanosecondsSinceEpoch: 0), payload: Self.sample(),
            payloadEncoding: .fields, previousHash: .zero, checksum: 0)
        #expect(event.jsonPayload == json)
        let cloud = event.cloudEventJSON(source: "urn:test")
        #expect(cloud.contains(#""datacontenttype":"application/json","data":{"service":"echo \"quoted\" é","#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(cloud.utf8)) as? [String: Any])
        #expect((object["data"] as? [String: Any])?["attempt"] as? Int == -3)
        // Other payloads are shown as they are.
        var plain = event
        plain.payloadEncoding = .json
        plain.payload = Array(#"{"a":1}"#.utf8)
        #expect(plain.jsonPayload == plain.payload)
    }

    /// A payload cut anywhere, or with a length running past its end, is refused, never read past:
    /// a damaged record must not be taken for a shorter message.
    @Test func malformedPayloadsAreRefused() throws {
        let sample = Self.sample()
        func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { raw in FieldsPayload.forEach(in: raw) { _ in true } } }
        #expect(valid(sample))
        for cut in 0..<sample.count {
            #expect(!valid(Array(sample[..<cut])), "cut at \(cut)")
            #expect(Array(sample[..<cut]).withUnsafeBytes(FieldsPayload.json) == nil)
        }
        var wrongFormat = sample
        wrongFormat[0] = 9
        var moreFields = sample
        moreFields[1] += 1
        var fewerFields = sample
        fewerFields[1] -= 1
        var unknownKind = sample
        unknownKind[3] = 7
        var longString = sample
        longString[3 + 1 + 1 + 7] = 0xFF  // the service's length, low byte
        var manyFrames = sample
        let body = try #require(sample.indices.first { sample[$0] == 3 && sample[$0 + 1] == 4 })
        manyFrames[body + 2 + 4] = 200  // the body's frame count
        for bad in [wrongFormat, moreFields, fewerFields, unknownKind, longString, manyFrames, sample + [0]] {
            #expect(!valid(bad))
        }
        // A field named by a one-character literal, which Swift stores without a pointer.
        var single = FieldsPayload.Writer()
        single.integer("n", 1)
        let found = single.bytes.withUnsafeBytes { raw in FieldsPayload.forEach(in: raw) { $0.keyIs("n") } }
        #expect(found)
    }
}
