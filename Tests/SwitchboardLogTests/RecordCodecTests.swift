// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import SwitchboardLog
import TestSupport

@Suite struct RecordCodecTests {
    @Test func crc32cMatchesTheStandardCheckValue() {
        let bytes = Array("123456789".utf8)
        bytes.withUnsafeBytes { raw in
            #expect(CRC32C.checksum(raw) == 0xE306_9283)
            #expect(CRC32C.software(raw) == 0xE306_9283)
        }
    }

    @Test(arguments: [0, 1, 7, 8, 9, 63, 64, 65, 1000])
    func hardwareAndSoftwareCRCAgreeAndChain(length: Int) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes.withUnsafeBytes { raw in
            let whole = CRC32C.checksum(raw)
            #expect(whole == CRC32C.software(raw))
            let split = length / 3
            let head = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<split]))
            #expect(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[split...]), continuing: head) == whole)
        }
    }

    @Test func sha256MatchesAKnownDigest() {
        #expect(SHA256Hasher.digest(Array("abc".utf8)).description
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256Digest.zero.bytes == [UInt8](repeating: 0, count: 32))
    }

    static let events: [NewEvent] = [
        NewEvent(type: "t", payload: []),
        NewEvent(type: "run.started", schemaVersion: 7, runID: "run-ü", streamID: "agent/planner#1",
                 messageID: "m-1", causationID: "m-0", timestamp: Timestamp(nanosecondsSinceEpoch: -5),
                 payload: Array("{\"k\":[1,2]}".utf8), payloadEncoding: .json),
        NewEvent(type: String(repeating: "x", count: 255), runID: String(repeating: "r", count: 255),
                 payload: [UInt8](repeating: 0xFF, count: 70_000), payloadEncoding: .binary),
    ]

    @Test(arguments: events.indices)
    func recordRoundTripsEveryField(index: Int) throws {
        let event = Self.events[index]
        var record = RecordCodec.encode(event)
        let hash = SHA256Hasher.digest(Array("previous".utf8))
        let checksum = RecordCodec.seal(&record, position: 42, streamVersion: 9, previousHash: hash)
        let decoded = try record.withUnsafeBytes { try RecordCodec.decode($0, position: 42) }
        #expect(decoded == RecordedEvent(
            position: 42, type: event.type, schemaVersion: event.schemaVersion, runID: event.runID,
            streamID: event.streamID, streamVersion: 9, messageID: event.messageID,
            causationID: event.causationID, timestamp: event.timestamp, payload: event.payload,
            payloadEncoding: event.payloadEncoding, previousHash: hash, checksum: checksum))
    }

    @Test func everySingleBitFlipIsDetected() throws {
        var record = RecordCodec.encode(Self.events[1])
        _ = RecordCodec.seal(&record, position: 3, streamVersion: 1, previousHash: .zero)
        for index in record.indices {
            for bit in 0..<8 {
                var damaged = record
                damaged[index] ^= UInt8(1 << bit)
                #expect(throws: EventLogError.self) {
                    try damaged.withUnsafeBytes { try RecordCodec.decode($0, position: 3) }
                }
            }
        }
    }

    @Test func truncatedAndRandomBytesFailWithAnErrorNamingThePosition() {
        var generator = SystemRandomNumberGenerator()
        var record = RecordCodec.encode(Self.events[1])
        _ = RecordCodec.seal(&record, position: 8, streamVersion: 1, previousHash: .zero)
        var inputs = (0..<record.count).map { Array(record.prefix($0)) }
        inputs += (0..<2000).map { _ in (0..<Int.random(in: 0...200)).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        for input in inputs {
            do {
                _ = try input.withUnsafeBytes { try RecordCodec.decode($0, position: 8) }
                Issue.record("decoded garbage of \(input.count) bytes")
            } catch let error as EventLogError {
                #expect(error.code == .corruptRecord)
                #expect(error.position == 8)
                #expect(error.message.contains("position 8"))
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test func oversizedFieldsAreRejectedWithClearErrors() {
        let long = String(repeating: "a", count: 256)
        for event in [NewEvent(type: ""), NewEvent(type: long), NewEvent(type: "t", runID: long),
                      NewEvent(type: "t", payload: [UInt8](repeating: 0, count: 11))] {
            #expect(throws: EventLogError.self) { try RecordCodec.validate(event, maximumPayloadSize: 10) }
        }
    }

    @Test func timestampsRenderAsRFC3339() {
        #expect(Timestamp(nanosecondsSinceEpoch: 0).description == "1970-01-01T00:00:00.000000000Z")
        #expect(Timestamp(nanosecondsSinceEpoch: 1_795_304_700_123_456_789).description
            == "2026-11-21T23:45:00.123456789Z")
        #expect(Timestamp(nanosecondsSinceEpoch: -1).description == "1969-12-31T23:59:59.999999999Z")
        #expect(Timestamp(nanosecondsSinceEpoch: 951_782_400_000_000_000).description
            == "2000-02-29T00:00:00.000000000Z")
    }

    @Test(arguments: [
        ("{}", true), ("[1,2,{\"a\":null}]", true), (" \"x\\u00e9\\n\" ", true), ("-0.5e+3", true),
        ("true", true), ("{", false), ("{\"a\"}", false), ("[1,]", false), ("01", false), ("\"\u{1}\"", false),
        ("nul", false), ("{} {}", false), ("", false),
    ])
    func jsonValidatorAcceptsExactlyJSON(text: String, valid: Bool) {
        #expect(JSONText.isValid(Array(text.utf8)) == valid)
    }

    @Test func base64MatchesFoundation() {
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            #expect(Base64.encode(bytes) == Data(bytes).base64EncodedString())
            #expect(Base64.decode(Array(Base64.encode(bytes).utf8)) == bytes)
        }
    }

    @Test(arguments: ["A", "AB=", "A===", "AB=C", "=ABC", "AB==AAAA", "AB C", "AB-_", "ABC\u{0}"])
    func base64RefusesWhatIsNotPaddedStandardBase64(text: String) {
        #expect(Base64.decode(Array(text.utf8)) == nil)
        #expect(Base64.decode(Array(text.utf8)[...]) == nil)
        var out: [UInt8] = [1, 2, 3]
        #expect(Array(text.utf8).withUnsafeBytes { Base64.decode($0, into: &out) } == false)
        #expect(out.isEmpty)
    }

    /// Replay decodes each envelope frame into one reused buffer: longer and shorter texts in turn
    /// must each leave exactly their own bytes.
    @Test func base64DecodesIntoAReusedBufferWithNothingLeftOver() {
        var out: [UInt8] = []
        for length in [12, 0, 5, 40, 1, 2, 39, 3] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 53 + length) }
            let text = Array(Base64.encode(bytes).utf8)
            #expect(text.withUnsafeBytes { Base64.decode($0, into: &out) })
            #expect(out == bytes)
        }
    }
}

@Suite struct HexTests {
    @Test func everyByteIsTwoLowercaseDigits() {
        let all = (0...255).map(UInt8.init)
        #expect(Hex.encode(all) == all.map { String(format: "%02x", $0) }.joined())
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.encode(Array(all[250...])) == "fafbfcfdfeff")
        #expect(SHA256Digest.of(Array("abc".utf8)).description
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
