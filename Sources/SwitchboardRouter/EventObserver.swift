// SPDX-License-Identifier: Apache-2.0
public import SwitchboardWire

/// Follows the event log through a router: history from `sb.events`, then the live event bus,
/// with no gap and no duplicate.
///
/// Every bus message carries its log position. The observer expects the positions in order;
/// one it already has is dropped, and one past a gap (a message the bus dropped, or one sent
/// before the subscription took effect) triggers a catch-up from the first missing position.
public final class EventObserver {
    private let client: MDPClient
    private let subscriber: ZMQSocket
    private let run: String?
    /// The position of the next event to deliver.
    public private(set) var next: UInt64

    /// - Parameter from: the first position wanted; 0 for "only events from now on".
    public init(context: ZMQContext, router: String, events: String, from: UInt64 = 0, run: String? = nil) throws {
        client = try MDPClient(context: context, endpoint: router)
        subscriber = try ZMQSocket(context, type: .sub)
        try subscriber.setOption(.subscribe, [])
        try subscriber.connect(events)
        self.run = run
        self.next = from
    }

    /// Delivers `(position, CloudEvent JSON)` in position order until `body` returns false or
    /// `shouldStop` says so (checked at least every `pollInterval` milliseconds).
    public func run(pollInterval: Int = 100, until shouldStop: () -> Bool = { false },
                    _ body: (UInt64, String) throws -> Bool) throws {
        if next == 0 {
            next = try catchUpTail() + 1
        } else if try !catchUp(body) {
            return
        }
        while !shouldStop() {
            guard try ZMQSocket.poll([subscriber], timeout: pollInterval)[0] else { continue }
            while let frames = try subscriber.receive(wait: false) {
                guard frames.count == 3, let position = EventBus.decodePosition(frames[1]) else { continue }
                if position < next { continue }
                if position > next, try !catchUp(body) { return }
                if position != next { continue }
                next = position + 1
                let json = String(decoding: frames[2], as: UTF8.self)
                if matches(topic: frames[0], json: json), try !body(position, json) {
                    return
                }
            }
        }
    }

    /// Whether a bus message belongs to the run asked for. Run ids may contain dots, so the topic
    /// `<run id>.<type>` is compared whole, with the type read from the CloudEvent.
    private func matches(topic: [UInt8], json: String) -> Bool {
        guard let run else { return true }
        let prefix = Array((run + ".").utf8)
        guard topic.starts(with: prefix) else { return false }
        guard let type = Self.cloudEventType(json) else { return true }
        return topic == prefix + Array(type.utf8)
    }

    /// The `type` attribute of a CloudEvent as Switchboard renders it (the fourth attribute), when
    /// it needs no unescaping.
    static func cloudEventType(_ json: String) -> String? {
        let bytes = Array(json.utf8)
        let needle = Array(",\"type\":\"".utf8)
        guard bytes.count > needle.count,
              let start = (0...(bytes.count - needle.count)).first(where: { bytes[$0..<$0 + needle.count].elementsEqual(needle) })
        else { return nil }
        let rest = bytes[(start + needle.count)...]
        guard let end = rest.firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        let type = rest[..<end]
        return type.contains(UInt8(ascii: "\\")) ? nil : String(decoding: type, as: UTF8.self)
    }

    private func catchUpTail() throws -> UInt64 {
        let replies = try client.request(service: EventBus.catchUpService, body: [EventBus.position(0)])
        guard let final = replies.last, let tail = final.first.flatMap(EventBus.decodePosition) else {
            throw WireError(.malformed, "sb.events answered without a position")
        }
        return tail
    }

    /// Reads history from `next` until the log's end; returns false when `body` asked to stop.
    private func catchUp(_ body: (UInt64, String) throws -> Bool) throws -> Bool {
        while true {
            var request = [EventBus.position(next)]
            if let run { request.append(Array(run.utf8)) }
            let replies = try client.request(service: EventBus.catchUpService, body: request)
            var expected = next
            var gap = false
            for reply in replies.dropLast() {
                guard reply.count == 2, let position = EventBus.decodePosition(reply[0]) else { continue }
                // Without a run filter history is contiguous; a hole means a reply was dropped.
                if run == nil && position != expected {
                    gap = true
                    break
                }
                expected = position + 1
                guard try body(position, String(decoding: reply[1], as: UTF8.self)) else { return false }
            }
            if gap {
                next = expected
                continue
            }
            guard let final = replies.last, final.count == 2, let covered = EventBus.decodePosition(final[0]) else {
                throw WireError(.malformed, "sb.events answered \(String(decoding: replies.last?.first ?? [], as: UTF8.self))")
            }
            next = covered + 1
            if final[1] != Array("more".utf8) { return true }
        }
    }
}

@available(*, unavailable)
extension EventObserver: Sendable {}
