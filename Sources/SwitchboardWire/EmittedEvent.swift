// SPDX-License-Identifier: Apache-2.0

/// A domain event an agent emitted, carried to the router in a trailing body frame of the agent's
/// next request or reply. The carrying message's envelope says how many such frames end its body
/// in the header ``headerName``; the router strips them and logs each as its own event.
///
/// Layout: `"SBV" 0x01 | u8+type | u8+stream | u8+message id | u8+causation id | u16 LE schema | payload`.
public struct EmittedEvent: Sendable, Hashable {
    public static let magic: [UInt8] = [0x53, 0x42, 0x56, 0x01]
    /// The envelope header holding the count of trailing event frames.
    public static let headerName = "emit"

    public var type: String
    public var streamID: String
    public var messageID: String
    public var causationID: String
    public var schemaVersion: UInt16
    /// JSON text.
    public var payload: [UInt8]

    public init(type: String, streamID: String, messageID: String, causationID: String, schemaVersion: UInt16 = 1,
                payload: [UInt8]) {
        self.type = type
        self.streamID = streamID
        self.messageID = messageID
        self.causationID = causationID
        self.schemaVersion = schemaVersion
        self.payload = payload
    }

    public func encoded() throws -> [UInt8] {
        let lengths = (type.utf8.count, streamID.utf8.count, messageID.utf8.count, causationID.utf8.count)
        guard lengths.0 <= 255, lengths.1 <= 255, lengths.2 <= 255, lengths.3 <= 255 else {
            throw WireError(.tooLarge, "event field longer than 255 bytes")
        }
        // Sized first and written once: hosts encode one per emitted event.
        var out: [UInt8] = []
        out.reserveCapacity(Self.magic.count + 4 + lengths.0 + lengths.1 + lengths.2 + lengths.3 + 2 + payload.count)
        out.append(contentsOf: Self.magic)
        Self.appendShort(type, to: &out)
        Self.appendShort(streamID, to: &out)
        Self.appendShort(messageID, to: &out)
        Self.appendShort(causationID, to: &out)
        out.append(UInt8(truncatingIfNeeded: schemaVersion))
        out.append(UInt8(truncatingIfNeeded: schemaVersion >> 8))
        out.append(contentsOf: payload)
        return out
    }

    private static func appendShort(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: text.utf8.count))
        out.append(contentsOf: text.utf8)
    }

    /// Decodes an event frame; throws ``WireError/Code/malformed`` for anything else.
    public init(decoding frame: [UInt8]) throws {
        guard frame.starts(with: Self.magic) else { throw WireError(.malformed, "not an event frame (bad magic)") }
        // Read in place: no array of the texts, no slices retaining the frame.
        let (texts, end) = try frame.withUnsafeBytes { raw -> ((String, String, String, String), Int) in
            var index = 4
            func text() throws -> String {
                guard index < raw.count else { throw WireError(.malformed, "event frame is truncated") }
                let length = Int(raw[index])
                guard raw.count >= index + 1 + length,
                      let text = UTF8Text.string(UnsafeRawBufferPointer(rebasing: raw[(index + 1)..<(index + 1 + length)]))
                else { throw WireError(.malformed, "event frame is truncated or not UTF-8") }
                index += 1 + length
                return text
            }
            let texts = (try text(), try text(), try text(), try text())
            guard raw.count >= index + 2 else { throw WireError(.malformed, "event frame is truncated") }
            return (texts, index)
        }
        schemaVersion = UInt16(frame[end]) | UInt16(frame[end + 1]) << 8
        (type, streamID, messageID, causationID) = texts
        payload = Array(frame[(end + 2)...])
    }

    /// Splits the event frames off the end of a native body whose envelope announces them.
    /// - Parameter announced: the envelope's ``headerName`` header (nil when it has none).
    /// - Returns: the body without them, and the events; nil when the announcement is wrong.
    public static func split(_ body: [[UInt8]], announced: String?) -> (body: [[UInt8]], events: [EmittedEvent])? {
        guard let text = announced else { return (body, []) }
        guard let count = Int(text), count >= 0, count < body.count else { return nil }
        var events: [EmittedEvent] = []
        events.reserveCapacity(count)
        for frame in body.suffix(count) {
            guard let event = try? EmittedEvent(decoding: frame), !event.type.isEmpty else { return nil }
            events.append(event)
        }
        return (Array(body.dropLast(count)), events)
    }
}
