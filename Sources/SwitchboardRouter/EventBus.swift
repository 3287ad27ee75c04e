// SPDX-License-Identifier: Apache-2.0
public import SwitchboardLog
import SwitchboardWire

/// The frames of the event bus and of the `sb.events` catch-up service (docs/protocol.md).
public enum EventBus {
    /// The catch-up service's name.
    public static let catchUpService = "sb.events"
    /// Events per catch-up reply at most; the FINAL says whether more remain.
    static let catchUpChunk = 1000
    /// Payload bytes per catch-up reply at most (one event more if a single one is larger).
    static let catchUpBytes = 4 << 20

    /// `[topic "<run id>.<type>", position (8 bytes big-endian), CloudEvent JSON]`.
    /// About what a payload weighs once sent as CloudEvent data: a message event's frames go out
    /// as base64, a third larger than they are stored.
    static func sentSize(_ stored: Int, _ encoding: PayloadEncoding) -> Int {
        encoding == .fields ? stored + stored / 3 : stored
    }

    public static func frames(for event: RecordedEvent, source: String) -> [[UInt8]] {
        [Array("\(event.runID).\(event.type)".utf8), position(event.position),
         Array(event.cloudEventJSON(source: source).utf8)]
    }

    public static func position(_ value: UInt64) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    public static func decodePosition(_ frame: [UInt8]) -> UInt64? {
        guard frame.count == 8 else { return nil }
        return frame.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}

/// Answers `sb.events` requests straight from the log. It is read-only, so its requests are not
/// logged: an observer's catch-up leaves no trace in the history it reads.
///
/// Request body: one frame, the start position (8 bytes big-endian; 0 asks only for the tail),
/// and optionally a second, a run id. Reply: one PARTIAL per event `[position, CloudEvent JSON]`, then a FINAL
/// `[last position covered (8 bytes), "more" | "end"]`; on "more", ask again from the next position.
struct CatchUpService {
    private static let serviceName = Array(EventBus.catchUpService.utf8)
    let log: EventLog

    /// Handles the message when it is a client request for `sb.events`; returns whether it did.
    /// - Parameter published: the last position published on the bus. History is served only up to
    ///   it: later events reach the observer live, so nothing arrives twice.
    func handle(identity: [UInt8], frames: [[UInt8]], socket: ZMQSocket, published: UInt64) throws -> Bool {
        // Cheap test first: this runs for every message, and almost none are for sb.events.
        guard frames.prefix(4).contains(Self.serviceName) else { return false }
        guard case .success(let (.clientRequest(service, body), framing)) = MDPCodec.decodeFromPeer(frames),
              service == EventBus.catchUpService
        else { return false }
        guard let first = body.first, let from = EventBus.decodePosition(first) else {
            let error = RouterEvents.errorBody(code: "bad_request", message: "sb.events takes a start position (8 bytes)")
            try socket.send([identity] + MDPCodec.clientReply(.final, service: service, body: [error], framing: framing),
                            wait: false)
            return true
        }
        guard from > 0 else {
            // Position 0 asks only where the log ends: an observer that starts "from now".
            try socket.send([identity] + MDPCodec.clientReply(
                .final, service: service, body: [EventBus.position(published), Array("end".utf8)],
                framing: framing), wait: false)
            return true
        }
        let run = body.count > 1 ? String(decoding: body[1], as: UTF8.self) : nil
        // Bounded by count and by bytes: one request must not stall the router or fill its memory.
        var events: [RecordedEvent] = []
        var bytes = 0
        var truncated = false
        func fits(_ size: Int) -> Bool {
            events.count < EventBus.catchUpChunk && (events.isEmpty || bytes + size <= EventBus.catchUpBytes)
        }
        if let run {
            let found = try log.events(inRun: run, from: from, limit: EventBus.catchUpChunk)
            for event in found where event.position <= published {
                let size = EventBus.sentSize(event.payload.count, event.payloadEncoding)
                guard fits(size) else {
                    truncated = true
                    break
                }
                events.append(event)
                bytes += size
            }
            truncated = truncated || found.count == EventBus.catchUpChunk
        } else {
            try log.scan(from: from) { view in
                guard view.position <= published else { return false }
                let size = EventBus.sentSize(view.payloadCount, view.payloadEncoding)
                guard fits(size) else {
                    truncated = true
                    return false
                }
                events.append(view.event())
                bytes += size
                return true
            }
        }
        for event in events {
            let reply = [EventBus.position(event.position), Array(event.cloudEventJSON(source: log.cloudEventSource).utf8)]
            try socket.send([identity] + MDPCodec.clientReply(.partial, service: service, body: reply, framing: framing),
                            wait: false)
        }
        let more = truncated && !events.isEmpty
        let covered = more ? (events.last?.position ?? from) : max(published, from - 1)
        try socket.send([identity] + MDPCodec.clientReply(
            .final, service: service, body: [EventBus.position(covered), Array((more ? "more" : "end").utf8)],
            framing: framing), wait: false)
        return true
    }
}
