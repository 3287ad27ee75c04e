// SPDX-License-Identifier: Apache-2.0

/// One server-sent event: its `event:` name (empty when absent) and its `data:` lines joined by newlines.
public struct ServerSentEvent: Sendable, Hashable {
    public var event: String
    public var data: String
}

/// Splits a `text/event-stream` body into events as its bytes arrive, in whatever pieces.
public struct ServerSentEventParser: Sendable {
    private var buffer: [UInt8] = []
    private var event = ""
    private var data: [String] = []

    public init() {}

    /// Feeds bytes; returns the events they completed.
    public mutating func feed(_ bytes: [UInt8]) -> [ServerSentEvent] {
        buffer += bytes
        var events: [ServerSentEvent] = []
        var start = 0
        while let newline = buffer[start...].firstIndex(of: 10) {
            var end = newline
            if end > start, buffer[end - 1] == 13 { end -= 1 }
            let line = String(decoding: buffer[start..<end], as: UTF8.self)
            start = newline + 1
            if line.isEmpty {
                if !data.isEmpty { events.append(ServerSentEvent(event: event, data: data.joined(separator: "\n"))) }
                event = ""
                data = []
            } else if line.hasPrefix(":") {
                continue  // a comment, often a keep-alive
            } else {
                let (field, value) = Self.split(line)
                switch field {
                case "event": event = value
                case "data": data.append(value)
                default: break
                }
            }
        }
        buffer.removeFirst(start)
        return events
    }

    /// True when bytes of an unfinished event are still waiting for their blank line.
    public var hasPending: Bool { !data.isEmpty || buffer.contains { $0 != 10 && $0 != 13 } }

    private static func split(_ line: String) -> (String, String) {
        guard let colon = line.firstIndex(of: ":") else { return (line, "") }
        var value = line[line.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        return (String(line[..<colon]), String(value))
    }
}
