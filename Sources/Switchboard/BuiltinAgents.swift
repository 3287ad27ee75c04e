// SPDX-License-Identifier: Apache-2.0

/// Agents shipped for tests, benchmarks and the demo.
public enum BuiltinAgents {
    /// Every built-in type, by name.
    public static let all: [AgentType] = [AgentType(Echo.self), AgentType(Counter.self), AgentType(Pipeline.self)]
}

/// Replies with what it was sent.
public actor Echo: Agent {
    public static let descriptor = AgentDescriptor(name: "echo", version: "1.0")
    public var state = NoState()

    public init(id: AgentID) {}

    public func handle(_ message: AgentMessage, context: AgentContext<Echo>) async throws -> Payload {
        message.payload
    }
}

/// Keeps a running total per key: `{"add": n}` (1 when absent) emits `counter.added` and replies
/// `{"total": t}`.
public actor Counter: Agent {
    public static let descriptor = AgentDescriptor(name: "counter", version: "1.0")

    public struct Added: AgentEvent, Equatable {
        public var amount: Int
        public var eventType: String { "counter.added" }
    }

    public struct State: AgentState {
        public var total = 0
        public init() {}
        public mutating func apply(_ event: Added) {
            total += event.amount
        }
    }

    public var state = State()

    public init(id: AgentID) {}

    public func handle(_ message: AgentMessage, context: AgentContext<Counter>) async throws -> Payload {
        struct Input: Decodable {
            var add: Int?
        }
        let amount: Int
        if message.payload.bytes.isEmpty {
            amount = 1
        } else if let plain = Self.plainAdd(message.payload.bytes) {
            amount = plain
        } else {
            amount = try message.payload.decode(Input.self).add ?? 1
        }
        try context.emit(Added(amount: amount))
        return try Payload(json: ["total": state.total])
    }

    /// `n` of an input that is exactly `{"add": n}` with `n` a plain JSON integer; nil for anything
    /// else, which JSONDecoder then reads (and rejects, when it is not valid).
    static func plainAdd(_ bytes: [UInt8]) -> Int? {
        var amount: Int?
        var members = 0
        let flat = bytes.withUnsafeBytes { raw in
            FlatJSON.forEach(in: raw) { member in
                members += 1
                guard members == 1, member.keyIs("add"), !member.isString, let text = member.string,
                      let value = Int(text), text == String(value)
                else { return false }
                amount = value
                return true
            }
        }
        return flat ? amount : nil
    }
}

/// Three steps through the router: `echo` the input, add one to this run's `counter`, `echo` a
/// summary; emits `pipeline.step` after each and replies with the summary.
public actor Pipeline: Agent {
    public static let descriptor = AgentDescriptor(name: "pipeline", version: "1.0")

    public struct Step: AgentEvent {
        public var step: Int
        public var service: String
        public var eventType: String { "pipeline.step" }
    }

    public struct State: AgentState {
        public var completed = 0
        public init() {}
        public mutating func apply(_ event: Step) {
            completed = event.step
        }
    }

    public var state = State()

    public init(id: AgentID) {}

    public func handle(_ message: AgentMessage, context: AgentContext<Pipeline>) async throws -> Payload {
        let echoed = try await context.ask("echo", message.payload)
        try context.emit(Step(step: 1, service: "echo"))
        let counted = try await context.ask("counter", try Payload(json: ["add": 1]))
        try context.emit(Step(step: 2, service: "counter"))
        let summary = Payload(text: "{\"input\":\(echoed.text.isEmpty ? "null" : echoed.text),"
            + "\"counter\":\(counted.text),\"steps\":3}")
        let result = try await context.ask("echo", summary)
        try context.emit(Step(step: 3, service: "echo"))
        return result
    }
}
