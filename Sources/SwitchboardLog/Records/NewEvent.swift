// SPDX-License-Identifier: Apache-2.0

/// How a payload's bytes are to be read: opaque bytes or JSON text.
public struct PayloadEncoding: RawRepresentable, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Opaque bytes (`application/octet-stream`).
    public static let binary = PayloadEncoding(rawValue: 0)
    /// UTF-8 JSON text (`application/json`).
    public static let json = PayloadEncoding(rawValue: 1)
}

/// What an append expects a stream's version to be; a mismatch fails the whole batch.
public struct ExpectedVersion: Sendable, Hashable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case any, noStream, exact(UInt64)
    }

    let kind: Kind

    /// No check.
    public static let any = ExpectedVersion(kind: .any)
    /// The stream must have no events yet.
    public static let noStream = ExpectedVersion(kind: .noStream)
    /// The stream must have exactly `version` events.
    public static func exact(_ version: UInt64) -> ExpectedVersion {
        version == 0 ? .noStream : ExpectedVersion(kind: .exact(version))
    }

    func admits(_ current: UInt64) -> Bool {
        switch kind {
        case .any: true
        case .noStream: current == 0
        case .exact(let version): current == version
        }
    }

    public var description: String {
        switch kind {
        case .any: "any"
        case .noStream: "no stream (0)"
        case .exact(let version): "\(version)"
        }
    }
}

/// An event to append. The log assigns its position, stream version and hash chain link.
public struct NewEvent: Sendable, Hashable {
    /// Stable type name, e.g. `run.started` (1–255 bytes of UTF-8). Never a Swift type name.
    public var type: String
    /// Version of the payload's schema for this type; readers upcast old versions.
    public var schemaVersion: UInt16
    /// The run the event belongs to; empty for events outside any run (at most 255 bytes).
    public var runID: String
    /// The stream the event belongs to, e.g. an agent instance; empty for none (at most 255 bytes).
    public var streamID: String
    /// The message this event records; empty when it records none (at most 255 bytes).
    public var messageID: String
    /// The message that caused this one; empty for none (at most 255 bytes).
    public var causationID: String
    public var timestamp: Timestamp
    public var payload: [UInt8]
    public var payloadEncoding: PayloadEncoding
    /// Checked against the stream's version before this event is appended.
    public var expectedVersion: ExpectedVersion

    public init(
        type: String,
        schemaVersion: UInt16 = 1,
        runID: String = "",
        streamID: String = "",
        messageID: String = "",
        causationID: String = "",
        timestamp: Timestamp = .now,
        payload: [UInt8] = [],
        payloadEncoding: PayloadEncoding = .json,
        expectedVersion: ExpectedVersion = .any
    ) {
        self.type = type
        self.schemaVersion = schemaVersion
        self.runID = runID
        self.streamID = streamID
        self.messageID = messageID
        self.causationID = causationID
        self.timestamp = timestamp
        self.payload = payload
        self.payloadEncoding = payloadEncoding
        self.expectedVersion = expectedVersion
    }

    /// An event whose payload is the UTF-8 bytes of `json`.
    public init(type: String, runID: String = "", streamID: String = "", json: String) {
        self.init(type: type, runID: runID, streamID: streamID, payload: Array(json.utf8), payloadEncoding: .json)
    }
}

/// An event as stored: the appended fields plus what the log assigned.
public struct RecordedEvent: Sendable, Hashable {
    /// Gapless global position, from 1.
    public var position: UInt64
    public var type: String
    public var schemaVersion: UInt16
    public var runID: String
    public var streamID: String
    /// The stream's version after this event (its 1-based index in the stream); 0 without a stream.
    public var streamVersion: UInt64
    public var messageID: String
    public var causationID: String
    public var timestamp: Timestamp
    public var payload: [UInt8]
    public var payloadEncoding: PayloadEncoding
    /// SHA-256 of the whole stored record at `position - 1` (zero for the first).
    public var previousHash: SHA256Digest
    /// CRC-32C of the stored record, verified when it was read.
    public var checksum: UInt32

    public init(
        position: UInt64, type: String, schemaVersion: UInt16, runID: String, streamID: String,
        streamVersion: UInt64, messageID: String, causationID: String, timestamp: Timestamp,
        payload: [UInt8], payloadEncoding: PayloadEncoding, previousHash: SHA256Digest, checksum: UInt32
    ) {
        self.position = position
        self.type = type
        self.schemaVersion = schemaVersion
        self.runID = runID
        self.streamID = streamID
        self.streamVersion = streamVersion
        self.messageID = messageID
        self.causationID = causationID
        self.timestamp = timestamp
        self.payload = payload
        self.payloadEncoding = payloadEncoding
        self.previousHash = previousHash
        self.checksum = checksum
    }
}

extension RecordedEvent {
    /// The fields of `event` moved in (it is left with empty ones), and what the log assigns zero.
    init(moving event: inout NewEvent) {
        func take<Value>(_ field: inout Value, _ empty: Value) -> Value {
            var value = empty
            swap(&value, &field)
            return value
        }
        self.init(
            position: 0, type: take(&event.type, ""), schemaVersion: event.schemaVersion,
            runID: take(&event.runID, ""), streamID: take(&event.streamID, ""), streamVersion: 0,
            messageID: take(&event.messageID, ""), causationID: take(&event.causationID, ""),
            timestamp: event.timestamp, payload: take(&event.payload, []), payloadEncoding: event.payloadEncoding,
            previousHash: .zero, checksum: 0)
    }
}
