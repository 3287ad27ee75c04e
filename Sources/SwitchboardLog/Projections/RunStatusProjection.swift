// SPDX-License-Identifier: Apache-2.0

/// Where a run stands, as its lifecycle events say.
public struct RunState: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let running = RunState(rawValue: "running")
    public static let paused = RunState(rawValue: "paused")
    public static let completed = RunState(rawValue: "completed")
    public static let failed = RunState(rawValue: "failed")
    public static let cancelled = RunState(rawValue: "cancelled")

    public var description: String { rawValue }

    /// Completed, failed or cancelled.
    public var isFinal: Bool { self == .completed || self == .failed || self == .cancelled }

    /// The state an event of this type moves a run to, or nil when the type is not a lifecycle event.
    static func after(eventType: String) -> RunState? {
        switch eventType {
        case "run.started", "run.resumed": .running
        case "run.paused": .paused
        case "run.completed": .completed
        case "run.failed": .failed
        case "run.cancelled": .cancelled
        default: nil
        }
    }

    /// Whether `event` is the router's record of a request with no causation id (a client's): one
    /// more the run has open. An agent's emitted event (it has a stream) never is, whatever its type.
    static func opensRequest(_ event: borrowing RecordedEvent) -> Bool {
        event.type == "request.received" && event.causationID.isEmpty && event.streamID.isEmpty
    }

    /// How a request with no causation id ended, for runs that log no lifecycle events: the
    /// router's final reply to it carries a `run` field (`completed` or `failed`), and so does its
    /// `request.failed` when it fails it.
    static func ending(_ event: borrowing RecordedEvent) -> RunState? {
        switch event.type {
        case "reply.final" where event.payloadEncoding == .fields:
            var ends: String?
            _ = event.payload.withUnsafeBytes { raw in
                FieldsPayload.forEach(in: raw) { field in
                    if field.keyIs("run") { ends = field.string }
                    return ends == nil
                }
            }
            return ends == completed.rawValue ? .completed : ends == failed.rawValue ? .failed : nil
        case "request.failed":
            // The router writes this flat JSON object itself, compactly; a quote inside a string
            // value is escaped, so the member's bytes cannot occur anywhere else.
            return event.payload.withUnsafeBytes { $0.firstRange(of: Self.failedMember) } != nil ? .failed : nil
        default:
            return nil
        }
    }

    private static let failedMember = Array(#""run":"failed""#.utf8)
}

/// One run's row in the run-status projection.
public struct RunStatus: Sendable, Hashable {
    public var runID: String
    public var state: RunState
    public var firstPosition: UInt64
    public var lastPosition: UInt64
    public var eventCount: UInt64
    public var firstTimestamp: Timestamp
    public var lastTimestamp: Timestamp

    /// Requests with no causation id (the run's first, and any a client sent into the run since)
    /// not answered yet: the run ends when the last of them is answered.
    public var openRequests: UInt32 = 0

    init(first event: borrowing RecordedEvent) {
        runID = event.runID
        state = RunState.after(eventType: event.type) ?? .running
        if RunState.opensRequest(event) { openRequests = 1 }
        firstPosition = event.position
        lastPosition = event.position
        eventCount = 1
        firstTimestamp = event.timestamp
        lastTimestamp = event.timestamp
    }

    mutating func fold(_ event: borrowing RecordedEvent) {
        if let next = RunState.after(eventType: event.type) {
            switch next {
            // A pause or resume that raced with the run's end does not bring it back.
            case .paused: if state == .running { state = next }
            case .running: if event.type == "run.started" ? !state.isFinal : state == .paused { state = next }
            default: state = next
            }
        } else if !event.streamID.isEmpty {
            // An agent's emitted event, whatever its type: only the router's events count requests.
        } else if RunState.opensRequest(event) {
            openRequests += 1
            // A client's new request into a run that had ended: it runs again until answered.
            if state == .completed || state == .failed { state = .running }
        } else if let ends = RunState.ending(event) {
            openRequests = openRequests > 0 ? openRequests - 1 : 0
            // Ended by its own lifecycle events, or cancelled, a run keeps that state. A paused run
            // whose requests are all answered has nothing left to resume.
            if openRequests == 0 && (state == .running || state == .paused) { state = ends }
        }
        lastPosition = event.position
        eventCount += 1
        lastTimestamp = event.timestamp
    }

    /// Value format 2: u8 2, u8 length + state, u64 first, u64 last, u64 count, i64 ×2 timestamps,
    /// u32 open requests (LE). Format 1 lacks the last field.
    func encoded() -> [UInt8] {
        withEncoded { Array($0) }
    }

    /// Calls `body` with the encoded row, built on the stack: a row is written per run in every commit.
    func withEncoded<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let stateLength = min(state.rawValue.utf8.count, 255)
        let count = 2 + stateLength + 44
        return try withUnsafeTemporaryAllocation(byteCount: count, alignment: 8) { out in
            out[0] = 2
            out[1] = UInt8(stateLength)
            var offset = 2
            for byte in state.rawValue.utf8.prefix(stateLength) {
                out[offset] = byte
                offset += 1
            }
            func put(_ value: UInt64) {
                out.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self)
                offset += 8
            }
            put(firstPosition)
            put(lastPosition)
            put(eventCount)
            put(UInt64(bitPattern: firstTimestamp.nanosecondsSinceEpoch))
            put(UInt64(bitPattern: lastTimestamp.nanosecondsSinceEpoch))
            out.storeBytes(of: openRequests.littleEndian, toByteOffset: offset, as: UInt32.self)
            return try body(UnsafeRawBufferPointer(out))
        }
    }

    init?(runID: String, encoded bytes: [UInt8]) {
        guard let row = bytes.withUnsafeBytes({ RunStatus(runID: runID, encoded: $0) }) else { return nil }
        self = row
    }

    init?(runID: String, encoded bytes: UnsafeRawBufferPointer) {
        // Format 1 rows are read by a log opened read-only whose projection predates version 2.
        guard bytes.count >= 2, bytes[0] == 1 || bytes[0] == 2 else { return nil }
        let stateLength = Int(bytes[1])
        guard bytes.count == 2 + stateLength + (bytes[0] == 1 ? 40 : 44) else { return nil }
        let stateBytes = UnsafeRawBufferPointer(rebasing: bytes[2..<2 + stateLength])
        // A state is ASCII: no validator (which instantiates generic metadata on every call) for it.
        guard let state = stateBytes.allSatisfy({ $0 < 0x80 }) ? String(decoding: stateBytes, as: UTF8.self)
                : String(validating: stateBytes, as: UTF8.self)
        else { return nil }
        func number(_ index: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 + stateLength + index * 8, as: UInt64.self))
        }
        self.runID = runID
        self.state = RunState(rawValue: state)
        firstPosition = number(0)
        lastPosition = number(1)
        eventCount = number(2)
        firstTimestamp = Timestamp(nanosecondsSinceEpoch: Int64(bitPattern: number(3)))
        lastTimestamp = Timestamp(nanosecondsSinceEpoch: Int64(bitPattern: number(4)))
        if bytes[0] == 2 {
            openRequests = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 + stateLength + 40, as: UInt32.self))
        }
    }
}

/// Built in: run id → ``RunStatus``, one LMDB lookup whatever the log's size.
public struct RunStatusProjection: Projection {
    public static let name = "run-status"
    public var name: String { Self.name }
    /// 2: a run ends when its open requests are answered; rows count them.
    public var version: UInt32 { 2 }

    public init() {}

    public func apply(_ events: [RecordedEvent], to state: ProjectionState) throws {
        // Rows in first-seen order, folded in place by index: a batch interleaves hundreds of
        // runs, and changing a row through a dictionary's optional subscript allocates per call.
        var rows: [RunStatus] = []
        var index: [String: Int] = [:]
        // Sized once: growing rehashes every run id seen so far.
        index.reserveCapacity(events.count)
        rows.reserveCapacity(events.count)
        var last = -1
        // Read in place, not copied out of the array: an event has eight reference-counted fields.
        for position in events.indices where !events[position].runID.isEmpty {
            // Batches often hold several events of one run in a row: skip the dictionary for those.
            if last >= 0, rows[last].runID == events[position].runID {
                rows[last].fold(events[position])
                continue
            }
            let runID = events[position].runID
            if let found = index[runID] {
                rows[found].fold(events[position])
                last = found
                continue
            }
            // Read where it lies, under a key on the stack: no array for either.
            let stored = try RunStatusProjection.withKey(runID) { key in
                try state.withValue(forKey: key) { bytes in
                    try bytes.map { bytes in
                        guard let row = RunStatus(runID: runID, encoded: bytes) else {
                            throw EventLogError(.corruptRecord, "run-status row of run \(runID) is unreadable")
                        }
                        return row
                    }
                }
            }
            if var row = stored {
                row.fold(events[position])
                rows.append(row)
            } else {
                rows.append(RunStatus(first: events[position]))
            }
            last = rows.count - 1
            index[runID] = last
        }
        for row in rows {
            try RunStatusProjection.withKey(row.runID) { key in
                try row.withEncoded { value in try state.setValue(value, forKey: key) }
            }
        }
    }

    /// Calls `body` with the UTF-8 bytes of `runID` where they lie (a copy only for a bridged string).
    static func withKey<R>(_ runID: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let result = try runID.utf8.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return try Array(runID.utf8).withUnsafeBytes(body)
    }
}
