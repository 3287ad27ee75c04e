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
        var out = Self.magic
        for text in [type, streamID, messageID, causationID] {
            let bytes = Array(text.utf8)
            guard bytes.count <= 255 else { throw WireError(.tooLarge, "event field longer than 255 bytes") }
            out.append(UInt8(bytes.count))
            out.append(contentsOf: bytes)
        }
        withUnsafeBytes(of: schemaVersion.littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: payload)
        return out
    }

    /// Decodes an event frame; throws ``WireError/Code/malformed`` for anything else.
    public init(decoding frame: [UInt8]) throws {
        guard frame.starts(with: Self.magic) else { throw WireError(.malformed, "not an event frame (bad magic)") }
        var index = 4
        var texts: [String] = []
        for _ in 0..<4 {
            guard index < frame.count else { throw WireError(.malformed, "event frame is truncated") }
            let length = Int(frame[index])
            guard frame.count >= index + 1 + length,
                  let text = String(validating: frame[(index + 1)..<(index + 1 + length)], as: UTF8.self)
            else { throw WireError(.malformed, "event frame is truncated or not UTF-8") }
            texts.append(text)
            index += 1 + length
        }
        guard frame.count >= index + 2 else { throw WireError(.malformed, "event frame is truncated") }
        schemaVersion = UInt16(frame[index]) | UInt16(frame[index + 1]) << 8
        type = texts[0]
        streamID = texts[1]
        messageID = texts[2]
        causationID = texts[3]
        payload = Array(frame[(index + 2)...])
    }

    /// Splits the event frames off the end of a native body whose envelope announces them.
    /// - Returns: the body without them, and the events; nil when the announcement is wrong.
    public static func split(_ body: [[UInt8]], envelope: Envelope) -> (body: [[UInt8]], events: [EmittedEvent])? {
        guard let text = envelope.headers[headerName] else { return (body, []) }
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
