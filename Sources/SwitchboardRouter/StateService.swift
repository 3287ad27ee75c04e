// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire

/// Answers `sb.state` from the log: what an agent host needs to rebuild an agent instance's state.
/// Read-only, so not logged, like `sb.events`.
///
/// Request body: `[stream id]` or `[stream id, causation id]`; events caused by that message are
/// left out (a redelivered message is handled again from the start, and emits them again).
/// Reply: one FINAL `[stream version (8 bytes big-endian), snapshot event frame or empty,
/// event frame…]` with every event after the latest snapshot, as ``EmittedEvent`` frames; the
/// version does not count the events left out. A request whose first frame is an envelope gets
/// a reply behind an envelope naming it as the causation.
/// A snapshot is an event of type ``snapshotType`` in the stream `<stream id>/snapshot` whose
/// payload starts `{"version":N,` where N is the stream version it covers.
public enum StateService {
    public static let serviceName = "sb.state"
    public static let snapshotType = "agent.snapshot"
    /// Events after the latest snapshot served at most; more is an error (snapshot more often).
    static let maximumEvents = 50_000

    /// The log stream of the agent instance (type, key): `agent/<type>/<key>`; one longer than 200
    /// bytes is `agent/<first 60 characters of type>/#<32 hex digits of its SHA-256>`, since stream
    /// ids hold 255 bytes and the snapshot stream adds a suffix. Characters past 200 bytes of the
    /// type are left out too.
    public static func instanceStream(type: String, key: String) -> String {
        let plain = "agent/\(type)/\(key)"
        guard plain.utf8.count > 200 else { return plain }
        var head = type.prefix(60)
        while head.utf8.count > 200 { head = head.dropLast() }
        return "agent/\(head)/#" + String(SHA256Digest.of(plain.utf8).description.prefix(32))
    }

    public static func snapshotStream(of streamID: String) -> String {
        streamID + "/snapshot"
    }

    /// Whether `frames` (identity removed) are a client request for this service.
    static func matches(_ frames: [[UInt8]]) -> Bool {
        guard frames.prefix(4).contains(where: { $0.count == serviceBytes.count && $0 == serviceBytes }) else {
            return false
        }
        guard case .success(let (.clientRequest(service, _), _)) = MDPCodec.decodeFromPeer(frames) else {
            return false
        }
        return service == serviceName
    }

    private static let serviceBytes = Array(serviceName.utf8)

    /// The reply to a request that ``matches(_:)``.
    static func reply(to frames: [[UInt8]], log: EventLog) -> [[UInt8]] {
        guard case .success(let (.clientRequest(service, fullBody), framing)) = MDPCodec.decodeFromPeer(frames) else {
            return []
        }
        var body = fullBody
        var replyEnvelope: Envelope?
        if let first = body.first, Envelope.isEnvelope(first) {
            let request = try? Envelope(decoding: first)
            replyEnvelope = Envelope(messageID: (request?.messageID ?? "") + "/state", runID: request?.runID ?? "",
                                     causationID: request?.messageID ?? "")
            body.removeFirst()
        }
        func reply(_ body: [[UInt8]], error: Bool = false) -> [[UInt8]] {
            var envelope = replyEnvelope
            if error { envelope?.headers["status"] = "error" }
            let head = (try? envelope?.encoded()).flatMap { $0 }.map { [$0] } ?? []
            return MDPCodec.clientReply(.final, service: service, body: head + body, framing: framing)
        }
        func failure(_ code: String, _ message: String) -> [[UInt8]] {
            reply([RouterEvents.errorBody(code: code, message: message)], error: true)
        }
        guard let first = body.first, let stream = UTF8Text.string(first), !stream.isEmpty,
              stream.utf8.count <= 240
        else { return failure("bad_request", "sb.state takes a stream id (1-240 bytes)") }
        let excluded = body.count > 1 ? String(decoding: body[1], as: UTF8.self) : nil
        do {
            let version = try log.streamVersion(stream)
            var snapshotFrame: [UInt8] = []
            var from: UInt64 = 1
            let snapshots = StateService.snapshotStream(of: stream)
            let snapshotVersion = try log.streamVersion(snapshots)
            if snapshotVersion > 0, let snapshot = try log.events(inStream: snapshots, fromVersion: snapshotVersion,
                                                                  limit: 1).first,
               let covered = coveredVersion(snapshot.payload) {
                snapshotFrame = try frame(snapshot)
                from = covered + 1
            }
            guard version < from || version - from < UInt64(maximumEvents) else {
                return failure("state_too_large", "stream \(stream) has more than \(maximumEvents) events since its last "
                             + "snapshot")
            }
            var out: [[UInt8]] = [[], snapshotFrame]
            var left: UInt64 = 0
            if version >= from {
                for event in try log.events(inStream: stream, fromVersion: from) {
                    if event.causationID == excluded {
                        left += 1
                    } else {
                        out.append(try frame(event))
                    }
                }
            }
            out[0] = EventBus.position(version - left)
            return reply(out)
        } catch {
            return failure("storage", "reading stream \(stream) failed: \(error)")
        }
    }

    private static func frame(_ event: RecordedEvent) throws -> [UInt8] {
        try EmittedEvent(type: event.type, streamID: event.streamID, messageID: event.messageID,
                         causationID: event.causationID, schemaVersion: event.schemaVersion,
                         payload: event.payload).encoded()
    }

    /// N from a payload starting `{"version":N`.
    public static func coveredVersion(_ payload: [UInt8]) -> UInt64? {
        let prefix = Array(#"{"version":"#.utf8)
        guard payload.starts(with: prefix) else { return nil }
        var value: UInt64 = 0
        var digits = 0
        for byte in payload.dropFirst(prefix.count) {
            guard byte >= 0x30 && byte <= 0x39 else { break }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - 0x30))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
            digits += 1
        }
        return digits > 0 ? value : nil
    }
}
