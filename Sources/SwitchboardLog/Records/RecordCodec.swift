// SPDX-License-Identifier: Apache-2.0

/// The binary record format, version 1 (docs/events.md). Integers little-endian.
///
/// ```
/// 0  u8   format version (1)          32 [32] SHA-256 of the previous record
/// 1  u8   payload encoding            64 u32  payload length
/// 2  u16  schema version              68 u8×5 lengths: type, run, stream, message, causation
/// 4  u32  CRC-32C of all other bytes  73 ...  the five strings, then the payload
/// 8  u64  position
/// 16 u64  stream version
/// 24 i64  timestamp (ns since epoch)
/// ```
enum RecordCodec {
    static let formatVersion: UInt8 = 1
    static let headerSize = 73
    static let maximumFieldLength = 255

    private static let checksumOffset = 4
    private static let positionOffset = 8
    private static let streamVersionOffset = 16
    private static let previousHashOffset = 32

    /// Checks the limits an event must meet to be stored.
    static func validate(_ event: NewEvent, maximumPayloadSize: Int) throws(EventLogError) {
        if event.type.utf8.isEmpty {
            throw EventLogError(.invalidEvent, "event type must not be empty")
        }
        // Checked one by one: an array of the fields would be built for every event appended.
        func check(_ name: String, _ value: String) throws(EventLogError) {
            guard value.utf8.count > maximumFieldLength else { return }
            throw EventLogError(.invalidEvent, "\(name) is \(value.utf8.count) bytes; the limit is \(maximumFieldLength)")
        }
        try check("type", event.type)
        try check("run id", event.runID)
        try check("stream id", event.streamID)
        try check("message id", event.messageID)
        try check("causation id", event.causationID)
        if event.payload.count > min(maximumPayloadSize, Int(UInt32.max)) {
            throw EventLogError(
                .invalidEvent, "payload of \(event.payload.count) bytes exceeds the limit of \(maximumPayloadSize)")
        }
    }

    /// Encodes `event` with position, stream version, previous hash and checksum still zero; see ``seal``.
    static func encode(_ event: NewEvent) -> [UInt8] {
        let total = headerSize + event.type.utf8.count + event.runID.utf8.count + event.streamID.utf8.count
            + event.messageID.utf8.count + event.causationID.utf8.count + event.payload.count
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            raw[0] = formatVersion
            raw[1] = event.payloadEncoding.rawValue
            raw.storeBytes(of: event.schemaVersion.littleEndian, toByteOffset: 2, as: UInt16.self)
            raw.storeBytes(of: event.timestamp.nanosecondsSinceEpoch.littleEndian, toByteOffset: 24, as: Int64.self)
            raw.storeBytes(of: UInt32(event.payload.count).littleEndian, toByteOffset: 64, as: UInt32.self)
            var offset = headerSize
            func put(_ string: String, _ index: Int) {
                func copy(_ utf8: UnsafeBufferPointer<UInt8>) {
                    raw[68 + index] = UInt8(utf8.count)
                    UnsafeMutableRawBufferPointer(rebasing: raw[offset..<offset + utf8.count])
                        .copyMemory(from: UnsafeRawBufferPointer(utf8))
                    offset += utf8.count
                }
                // Read in place: a `var` copy to call `withUTF8` on retains the string.
                if string.utf8.withContiguousStorageIfAvailable(copy) == nil {
                    var string = string
                    string.withUTF8(copy)
                }
            }
            put(event.type, 0)
            put(event.runID, 1)
            put(event.streamID, 2)
            put(event.messageID, 3)
            put(event.causationID, 4)
            event.payload.withUnsafeBytes { payload in
                UnsafeMutableRawBufferPointer(rebasing: raw[offset...]).copyMemory(from: payload)
            }
            count = total
        }
    }

    /// Fills in what the log assigns and the checksum; returns the checksum.
    static func seal(
        _ record: inout [UInt8], position: UInt64, streamVersion: UInt64, previousHash: SHA256Digest
    ) -> UInt32 {
        record.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: position.littleEndian, toByteOffset: positionOffset, as: UInt64.self)
            raw.storeBytes(of: streamVersion.littleEndian, toByteOffset: streamVersionOffset, as: UInt64.self)
            previousHash.withUnsafeBytes { hash in
                UnsafeMutableRawBufferPointer(rebasing: raw[previousHashOffset..<previousHashOffset + 32])
                    .copyMemory(from: hash)
            }
            let crc = checksum(of: UnsafeRawBufferPointer(raw))
            raw.storeBytes(of: crc.littleEndian, toByteOffset: checksumOffset, as: UInt32.self)
            return crc
        }
    }

    /// The CRC-32C over every byte but the checksum field.
    static func checksum(of record: UnsafeRawBufferPointer) -> UInt32 {
        let head = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: record[0..<checksumOffset]))
        return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: record[positionOffset...]), continuing: head)
    }

    /// Decodes and verifies a stored record; `position` is the key it was stored under.
    static func decode(_ record: UnsafeRawBufferPointer, position: UInt64) throws(EventLogError) -> RecordedEvent {
        decodeVerified(try RecordView(record, position: position))
    }

    /// Copies a verified record out of the map.
    static func decodeVerified(_ view: RecordView) -> RecordedEvent {
        RecordedEvent(
            position: view.position,
            type: string(view.field(0)),
            schemaVersion: view.schemaVersion,
            runID: string(view.field(1)),
            streamID: string(view.field(2)),
            streamVersion: view.streamVersion,
            messageID: string(view.field(3)),
            causationID: string(view.field(4)),
            timestamp: view.timestamp,
            payload: Array(view.payload),
            payloadEncoding: view.payloadEncoding,
            previousHash: SHA256Digest(raw: view.previousHash),
            checksum: view.checksum
        )
    }

    /// A stored string field. The contiguous fast path: the bytes were valid UTF-8 when written and
    /// the checksum vouches for them, so a repair here would mean a checksum collision.
    static func string(_ bytes: UnsafeRawBufferPointer) -> String {
        guard !bytes.isEmpty else { return "" }
        return String(decoding: bytes.assumingMemoryBound(to: UInt8.self), as: UTF8.self)
    }
}

/// A verified, zero-copy view of one stored record; valid only while its transaction is.
struct RecordView {
    let bytes: UnsafeRawBufferPointer
    let position: UInt64
    private let fieldEnds: (Int, Int, Int, Int, Int)

    /// Checks format, lengths, checksum and stored position; throws ``EventLogError/Code/corruptRecord``.
    init(_ bytes: UnsafeRawBufferPointer, position: UInt64) throws(EventLogError) {
        guard bytes.count >= RecordCodec.headerSize else {
            throw EventLogError.corrupt(position, "record of \(bytes.count) bytes is shorter than its header")
        }
        guard bytes[0] == RecordCodec.formatVersion else {
            throw EventLogError.corrupt(position, "unknown record format version \(bytes[0])")
        }
        let e0 = RecordCodec.headerSize + Int(bytes[68])
        let e1 = e0 + Int(bytes[69])
        let e2 = e1 + Int(bytes[70])
        let e3 = e2 + Int(bytes[71])
        let end = e3 + Int(bytes[72])
        let payloadLength = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 64, as: UInt32.self)))
        guard end + payloadLength == bytes.count else {
            throw EventLogError.corrupt(position, "record lengths do not add up to its size \(bytes.count)")
        }
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let computed = RecordCodec.checksum(of: bytes)
        guard stored == computed else {
            throw EventLogError.corrupt(
                position, "checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))")
        }
        let storedPosition = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard storedPosition == position else {
            throw EventLogError.corrupt(position, "record says position \(storedPosition)")
        }
        self.bytes = bytes
        self.position = position
        self.fieldEnds = (e0, e1, e2, e3, end)
    }

    var payloadEncoding: PayloadEncoding { PayloadEncoding(rawValue: bytes[1]) }
    var schemaVersion: UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
    var checksum: UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) }
    var streamVersion: UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) }
    var timestamp: Timestamp {
        Timestamp(nanosecondsSinceEpoch: Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 24, as: Int64.self)))
    }
    var previousHash: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[32..<64]) }

    /// Field 0…4: type, run id, stream id, message id, causation id.
    func field(_ index: Int) -> UnsafeRawBufferPointer {
        let (start, end): (Int, Int) =
            switch index {
            case 0: (RecordCodec.headerSize, fieldEnds.0)
            case 1: (fieldEnds.0, fieldEnds.1)
            case 2: (fieldEnds.1, fieldEnds.2)
            case 3: (fieldEnds.2, fieldEnds.3)
            default: (fieldEnds.3, fieldEnds.4)
            }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }

    var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[fieldEnds.4...]) }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
