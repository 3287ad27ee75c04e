// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import SwitchboardWire
import Testing

@Suite struct MDPCodecTests {
    static let framings: [MDPFraming] = [.plain, .delimited]

    @Test(arguments: framings)
    func peerMessagesRoundTripInBothFramings(framing: MDPFraming) throws {
        let cases: [([[UInt8]], MDPPeerMessage)] = [
            (MDPCodec.clientRequest(service: "echo", body: [[1], []], framing: framing),
             .clientRequest(service: "echo", body: [[1], []])),
            (MDPCodec.workerReady(service: "echo", framing: framing), .workerReady(service: "echo", metadata: nil)),
            (MDPCodec.workerReady(service: "llm", metadata: [9], framing: framing), .workerReady(service: "llm", metadata: [9])),
            (MDPCodec.workerReply(.workerPartial, client: [5], body: [[2]], framing: framing),
             .workerPartial(client: [5], body: [[2]])),
            (MDPCodec.workerReply(.workerFinal, client: [5], body: [], framing: framing), .workerFinal(client: [5], body: [])),
            (MDPCodec.workerSignal(.heartbeat, framing: framing), .workerHeartbeat),
            (MDPCodec.workerSignal(.disconnect, framing: framing), .workerDisconnect),
        ]
        for (frames, expected) in cases {
            let decoded = try MDPCodec.decodeFromPeer(frames).get()
            #expect(decoded.0 == expected)
            #expect(decoded.1 == framing)
        }
    }

    @Test(arguments: framings)
    func routerMessagesDecodeOnThePeerSide(framing: MDPFraming) throws {
        let reply = MDPCodec.clientReply(.final, service: "echo", body: [[1, 2]], framing: framing)
        let decoded = try MDPCodec.decodeClientReply(reply, framing: framing)
        #expect(decoded.command == .final && decoded.service == "echo" && decoded.body == [[1, 2]])
        let request = MDPCodec.workerRequest(client: [7, 7], body: [[3]], framing: framing)
        let forWorker = try MDPCodec.decodeForWorker(request, framing: framing)
        #expect(forWorker.command == .workerRequest && forWorker.client == [7, 7] && forWorker.body == [[3]])
        #expect(throws: WireError.self) { try MDPCodec.decodeClientReply(reply, framing: framing.hasDelimiter ? .plain : .delimited) }
    }

    @Test(arguments: [
        [], [[]], [Array("MDPC02".utf8)], [Array("MDPC02".utf8), [1, 1]], [Array("MDPC02".utf8), [2], Array("x".utf8)],
        [Array("MDPC02".utf8), [1]], [Array("MDPC02".utf8), [1], []], [Array("MDPC02".utf8), [1], [0xFF, 0xFE]],
        [Array("MDPC01".utf8), [1], Array("x".utf8)], [Array("MDPW02".utf8), [1]], [Array("MDPW02".utf8), [9]],
        [Array("MDPW02".utf8), [4], [], []], [Array("MDPW02".utf8), [4], [1]], [Array("MDPW02".utf8), [4], [1], [2]],
        [Array("MDPW02".utf8), [5], [0]], [Array("MDPW02".utf8), [1], Array("s".utf8), [1], [2]],
        [[], [], Array("MDPC02".utf8), [1], Array("x".utf8)],
    ] as [[[UInt8]]])
    func invalidFramesAreRejectedWithAReason(frames: [[UInt8]]) {
        guard case .failure(let error) = MDPCodec.decodeFromPeer(frames) else {
            Issue.record("accepted \(frames)")
            return
        }
        #expect(error.code == .malformed)
        #expect(!error.message.isEmpty)
    }

    @Test func randomFramesNeverCrashTheDecoder() {
        var generator = SystemRandomNumberGenerator()
        let seeds = [MDP.clientHeader, MDP.workerHeader, [], [1], [2], [3], [4], [5], [6], Array("echo".utf8)]
        for _ in 0..<50_000 {
            let frames = (0..<Int.random(in: 0...6, using: &generator)).map { _ in
                Bool.random(using: &generator) ? seeds.randomElement(using: &generator)!
                    : (0..<Int.random(in: 0...8, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
            _ = MDPCodec.decodeFromPeer(frames)
        }
    }
}

@Suite struct EnvelopeTests {
    @Test func envelopesRoundTrip() throws {
        let envelope = Envelope(messageID: "m-1", runID: "run-9", causationID: "m-0", attempt: 3,
                                deadline: 1_800_000_000_000_000_000, headers: ["b": "2", "a": "ü"])
        let bytes = try envelope.encoded()
        #expect(Envelope.isEnvelope(bytes))
        #expect(try Envelope(decoding: bytes) == envelope)
        #expect(try envelope.encoded() == bytes)
        for length in 0..<bytes.count {
            #expect(throws: WireError.self) { try Envelope(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: WireError.self) { try Envelope(decoding: bytes + [0]) }
        #expect(!Envelope.isEnvelope(Array("{}".utf8)))
    }

    /// The documented layout, byte for byte: other languages' peers write it by hand.
    @Test func theEncodingFollowsTheDocumentedLayout() throws {
        let envelope = Envelope(messageID: "m1", runID: "r", causationID: "", attempt: 0x0102_0304,
                                deadline: 0x0506, headers: ["zz": "é", "a": "1"])
        let expected: [UInt8] = Envelope.magic + [2] + Array("m1".utf8) + [1] + Array("r".utf8) + [0]
            + [0x04, 0x03, 0x02, 0x01] + [0x06, 0x05, 0, 0, 0, 0, 0, 0] + [2, 0]
            + [1] + Array("a".utf8) + [1, 0] + Array("1".utf8)
            + [2] + Array("zz".utf8) + [2, 0] + Array("é".utf8)
        #expect(try envelope.encoded() == expected)
        #expect(throws: WireError.self) { try Envelope(messageID: String(repeating: "x", count: 256)).encoded() }
        #expect(throws: WireError.self) {
            try Envelope(messageID: "m", headers: ["k": String(repeating: "v", count: 65_536)]).encoded()
        }
    }

    @Test(arguments: [[:], ["emit": "2"], ["emit": "1", "key": "k"], ["key": "k", "time": "5", "emit": "3"],
                      ["key": "k"]])
    func omittingAHeaderEncodesAsIfItWereAbsent(headers: [String: String]) throws {
        let envelope = Envelope(messageID: "m-1", runID: "run-1", causationID: "c", headers: headers)
        var without = envelope
        without.headers["emit"] = nil
        #expect(try envelope.encoded(omitting: "emit") == without.encoded())
        #expect(try Envelope(decoding: envelope.encoded(omitting: "emit")) == without)
    }

    @Test(arguments: [[:], ["emit": "2"], ["a": "1", "state.empty": "1", "time": "9", "zz": "z"], ["key": "k"],
                      ["time": "1", "status": "\u{E9}t\u{E9}"], ["state.empty": "1"], ["zz": String(repeating: "v", count: 300)]])
    func rewritingAFrameGivesWhatDecodingChangingAndEncodingGive(headers: [String: String]) throws {
        let envelope = Envelope(messageID: "m-1", runID: "run-1", causationID: "c", attempt: 3, deadline: -7,
                                headers: headers)
        let frame = try envelope.encoded()
        let changes: [[(key: String, value: String?)]] = [
            [], [("emit", nil)], [("state.empty", nil), ("time", "123")], [("state.empty", "1"), ("time", "4")],
            [("a", "x"), ("zz", nil)], [("0", "first"), ("~", "last")],
        ]
        for change in changes {
            for (runID, attempt) in [(String?.none, UInt32?.none), ("run-\u{E9}-longer", 9)] {
                var expected = envelope
                if let runID { expected.runID = runID }
                if let attempt { expected.attempt = attempt }
                for (key, value) in change { expected.headers[key] = value }
                let rewritten = try #require(Envelope.rewriting(frame, runID: runID, attempt: attempt, headers: change))
                #expect(rewritten == (try expected.encoded()), "\(headers) \(change)")
            }
        }
        // Frames it does not take: truncated, trailing bytes, or headers out of order.
        for length in 0..<frame.count {
            #expect(Envelope.rewriting(Array(frame.prefix(length)), headers: []) == nil)
        }
        #expect(Envelope.rewriting(frame + [0], headers: []) == nil)
    }

    @Test func rewritingLeavesFramesWithUnorderedOrNonASCIIKeysToTheDecoder() throws {
        func frame(_ headers: [(String, String)]) -> [UInt8] {
            var out = Envelope.magic + [1, 0x6D, 0, 0] + [1, 0, 0, 0] + [UInt8](repeating: 0, count: 8)
            out += [UInt8(headers.count), 0]
            for (key, value) in headers {
                out += [UInt8(key.utf8.count)] + Array(key.utf8) + [UInt8(value.utf8.count), 0] + Array(value.utf8)
            }
            return out
        }
        #expect(try Envelope(decoding: frame([("b", "1"), ("a", "2")])).headers == ["a": "2", "b": "1"])
        #expect(Envelope.rewriting(frame([("b", "1"), ("a", "2")]), headers: []) == nil)
        #expect(Envelope.rewriting(frame([("a", "1"), ("a", "2")]), headers: []) == nil)
        #expect(Envelope.rewriting(frame([("\u{E9}", "1")]), headers: []) == nil)
        #expect(Envelope.rewriting(frame([("a", "1"), ("b", "2")]), headers: []) == frame([("a", "1"), ("b", "2")]))
    }

    @Test(arguments: [[:], ["status": "error"], ["emit": "1", "status": "ok", "time": "5"], ["key": "k"],
                      ["status": "\u{E9}t\u{E9}", "zz": String(repeating: "v", count: 300)]])
    func oneHeaderIsReadAsTheDecodedHeadersHoldIt(headers: [String: String]) throws {
        let bytes = try Envelope(messageID: "m-\u{E9}", runID: "run-\u{E9}", causationID: "c-\u{E9}", headers: headers)
            .encoded()
        #expect(try Envelope.header("status", decoding: bytes) == headers["status"])
        #expect(try Envelope.header("statu", decoding: bytes) == nil)
        // With the causation id, as a host reads every reply.
        let read = try Envelope.causationID(andHeader: "status", decoding: bytes)
        #expect(read.causationID == "c-\u{E9}" && read.header == headers["status"])
        #expect(try Envelope.causationID(andHeader: "statu", decoding: bytes).header == nil)
        // A frame the full decoding refuses is refused here too: truncated, trailing bytes, bad UTF-8.
        for length in 0..<bytes.count {
            #expect(throws: WireError.self) { try Envelope.header("status", decoding: Array(bytes.prefix(length))) }
            #expect(throws: WireError.self) {
                try Envelope.causationID(andHeader: "status", decoding: Array(bytes.prefix(length)))
            }
        }
        #expect(throws: WireError.self) { try Envelope.header("status", decoding: bytes + [0]) }
        #expect(throws: WireError.self) { try Envelope.causationID(andHeader: "status", decoding: bytes + [0]) }
        for index in bytes.indices where bytes[index] >= 0x80 {
            var broken = bytes
            broken[index] = 0xFF
            #expect(throws: WireError.self) { try Envelope(decoding: broken) }
            #expect(throws: WireError.self) { try Envelope.causationID(andHeader: "status", decoding: broken) }
            #expect(throws: WireError.self) { try Envelope.header("status", decoding: broken) }
        }
    }
}

@Suite struct EmittedEventTests {
    @Test func eventsRoundTripInTheDocumentedLayout() throws {
        let event = EmittedEvent(type: "t", streamID: "agent/run-1", messageID: "m", causationID: "", schemaVersion: 0x0201,
                                 payload: Array("{\"a\":1}".utf8))
        let bytes = try event.encoded()
        let expected: [UInt8] = EmittedEvent.magic + [1] + Array("t".utf8) + [11] + Array("agent/run-1".utf8)
            + [1] + Array("m".utf8) + [0] + [0x01, 0x02] + Array("{\"a\":1}".utf8)
        #expect(bytes == expected)
        #expect(try EmittedEvent(decoding: bytes) == event)
        // Cut anywhere before the payload, the frame is refused; cut inside it, it decodes shorter.
        for length in 0..<(bytes.count - event.payload.count) {
            #expect(throws: WireError.self) { try EmittedEvent(decoding: Array(bytes.prefix(length))) }
        }
        var invalid = bytes
        invalid[5] = 0xFF  // inside the type: not UTF-8
        #expect(throws: WireError.self) { try EmittedEvent(decoding: invalid) }
        #expect(throws: WireError.self) {
            try EmittedEvent(type: String(repeating: "x", count: 256), streamID: "s", messageID: "m", causationID: "",
                             payload: []).encoded()
        }
    }
}

@Suite struct RunIDTests {
    private static func wallMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
    }

    /// The clock digits an id made between two readings of the clock may have.
    private static func clockDigits(from before: UInt64, to after: UInt64) -> Set<UInt64> {
        Set(((before >> 4)...(after >> 4)).map { $0 & 0xFFFF })
    }

    @Test func runIDsCarryTheClockAndRandomDigits() throws {
        let before = Self.wallMilliseconds()
        let ids = (0..<10_000).map { _ in Envelope.newRunID() }
        let expected = Self.clockDigits(from: before, to: Self.wallMilliseconds())
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.hasPrefix("run-") && id.utf8.count == 20)
            let digits = id.dropFirst(4)
            #expect(digits.allSatisfy { $0.isHexDigit && !$0.isUppercase })
            #expect(expected.contains(try #require(UInt64(digits.prefix(4), radix: 16))))
        }
        // Different random digits even within one step of the clock.
        #expect(Set(ids.map { $0.suffix(12) }).count == ids.count)
    }

    @Test func theClockDigitsFollowTheClock() throws {
        // Over 50 ms (a few steps), each id is bracketed by readings of the clock.
        let end = Self.wallMilliseconds() + 50
        var steps: Set<UInt64> = []
        while Self.wallMilliseconds() < end {
            let before = Self.wallMilliseconds()
            let id = Envelope.newRunID()
            let step = try #require(UInt64(id.dropFirst(4).prefix(4), radix: 16))
            #expect(Self.clockDigits(from: before, to: Self.wallMilliseconds()).contains(step))
            steps.insert(step)
        }
        #expect(steps.count >= 3)
    }
}

/// Text taken from frames: ASCII by the fast path, other UTF-8 by the validator, anything else refused.
@Suite struct UTF8TextTests {
    @Test func asciiAndOtherUTF8AreTakenAndInvalidBytesRefused() throws {
        for text in ["", "run-1/echo/2", "état ✓ 漢字 🎛️", String(repeating: "a", count: 300)] {
            #expect(UTF8Text.string(Array(text.utf8)) == text)
            #expect(UTF8Text.string(Array(("x" + text).utf8).dropFirst()) == text)
        }
        for bytes: [UInt8] in [[0xFF], [0x61, 0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0x61, 0x80, 0x62]] {
            #expect(UTF8Text.string(bytes) == nil, "\(bytes) is not UTF-8")
        }
        var envelope = try Envelope(messageID: "m", runID: "r\u{E9}").encoded()
        // The run id's second byte (0xA9 of é) made a lone lead byte: the envelope is refused.
        let index = try #require(envelope.lastIndex(of: 0xA9))
        envelope[index] = 0x41
        #expect(throws: WireError.self) { try Envelope(decoding: envelope) }
    }
}

/// Keys hashed once behave as the keys they wrap in sets and dictionaries.
@Suite struct PrehashedTests {
    @Test func aSetOfPrehashedIdsHoldsWhatASetOfTheIdsHolds() {
        let ids = (0..<2_000).map { "run-000000000000000\($0 % 700)/echo/\($0 % 3)" }
        var plain = Set<String>()
        var hashed = Set<Prehashed<String>>()
        for id in ids {
            #expect(plain.insert(id).inserted == hashed.insert(Prehashed(id)).inserted)
        }
        #expect(hashed.count == plain.count)
        for id in ids.prefix(500) { hashed.remove(Prehashed(id)); plain.remove(id) }
        #expect(Set(hashed.map(\.value)) == plain)
        #expect(Prehashed("a") == Prehashed("a") && Prehashed("a") != Prehashed("b"))
    }
}
