// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire

/// An agent: a Swift actor whose only door to the world is its ``AgentContext``.
///
/// The host creates one instance per ``AgentID`` (type and key, the key usually being the run id)
/// on demand, hands it the messages for that key strictly one after another, and drops it when it
/// has been idle for a while. Its ``state`` is a fold of the events it emitted: a handler decides,
/// calls ``AgentContext/emit(_:)`` (which applies the event at once), and asks services through
/// ``AgentContext/ask(_:_:)``. Rebuilding an instance folds its logged events again; replaying a run
/// re-executes its handlers against the log.
///
/// > Important: a handler must reach nothing nondeterministic except through its context: no
/// > `Date()`, no `random()`, no files, sockets or environment, no shared mutable globals, no
/// > unordered iteration feeding an output. docs/agents.md says why.
///
/// ```swift
/// actor Greeter: Agent {
///     static let descriptor = AgentDescriptor(name: "greeter", version: "1.0")
///     var state = Greeting()
///     init(id: AgentID) {}
///     func handle(_ message: AgentMessage, context: AgentContext<Greeter>) async throws -> Payload {
///         try context.emit(.greeted(message.payload.text))
///         return try await context.ask("echo", message.payload)
///     }
/// }
/// ```
public protocol Agent: AgentActor {
    /// The service name, version and config digest this type registers under.
    static var descriptor: AgentDescriptor { get }

    /// A fresh instance whose ``state`` is `State()`.
    init(id: AgentID)
}

/// What every agent is: an actor with event-sourced state and a handler.
///
/// Conform to ``Agent`` unless instances need configuration (a provider, a tool server): such
/// types conform to this protocol and are registered with ``AgentType/init(descriptor:make:)``.
public protocol AgentActor: Actor {
    associatedtype State: AgentState

    /// The fold of every event this instance emitted; only ``AgentState/apply(_:)`` changes it.
    var state: State { get set }

    /// Handles one message; the returned payload is the reply. A thrown error becomes an error reply.
    func handle(_ message: AgentMessage, context: AgentContext<Self>) async throws -> Payload
}

/// An agent's state: a value rebuilt by folding events with a pure, synchronous ``apply(_:)``.
public protocol AgentState: Codable, Sendable {
    associatedtype Event: AgentEvent
    init()
    mutating func apply(_ event: Event)
}

/// A domain event: JSON on the log under a stable ``eventType`` name, never a Swift type name.
public protocol AgentEvent: Codable, Sendable {
    /// The logged event type, e.g. `counter.added`.
    var eventType: String { get }
}

/// State for agents that keep none.
public struct NoState: AgentState {
    public struct Event: AgentEvent {
        public var eventType: String { "none" }
    }

    public init() {}
    public mutating func apply(_ event: Event) {}
}

/// What an agent type registers as: its service name and what goes into determinism locks.
public struct AgentDescriptor: Sendable, Hashable {
    /// The service name it serves under (1–100 bytes).
    public var name: String
    /// Its version: bump it whenever the handler's behaviour changes.
    public var version: String
    /// A digest of its configuration (prompts, parameters), empty when it has none.
    public var configDigest: String
    /// Events between snapshots of its state.
    public var snapshotInterval: Int

    public init(name: String, version: String, configDigest: String = "", snapshotInterval: Int = 100) {
        self.name = name
        self.version = version
        self.configDigest = configDigest
        self.snapshotInterval = max(1, snapshotInterval)
    }
}

/// An agent instance: its type's service name and a key.
public struct AgentID: Sendable, Hashable, CustomStringConvertible {
    public var type: String
    public var key: String

    public init(type: String, key: String) {
        self.type = type
        self.key = key
    }

    /// The log stream holding this instance's events.
    public var streamID: String {
        StateService.instanceStream(type: type, key: key)
    }

    public var description: String { "\(type)/\(key)" }
}

/// A message delivered to an agent.
///
/// Its fields live in one shared storage, copied on first write: replay and the host hand a message
/// on several times per handler, and a copy of its strings, frames and headers each would retain
/// and release all of them.
public struct AgentMessage: Sendable {
    /// The router's id for this message: stable across redeliveries.
    public var messageID: String {
        get { storage.messageID }
        _modify { yield &unique().messageID }
    }
    public var runID: String {
        get { storage.runID }
        _modify { yield &unique().runID }
    }
    /// The message that caused it (empty when a client started the run).
    public var causationID: String {
        get { storage.causationID }
        _modify { yield &unique().causationID }
    }
    /// 1 for the first delivery, raised on each redelivery.
    public var attempt: UInt32 {
        get { storage.attempt }
        _modify { yield &unique().attempt }
    }
    /// The first body frame after the envelope.
    public var payload: Payload {
        get { storage.payload }
        _modify { yield &unique().payload }
    }
    /// Every body frame after the envelope.
    public var frames: [[UInt8]] {
        get { storage.frames }
        _modify { yield &unique().frames }
    }
    /// Envelope headers.
    public var headers: [String: String] {
        get { storage.headers }
        _modify { yield &unique().headers }
    }

    private var storage: Storage

    public init(messageID: String, runID: String, causationID: String = "", attempt: UInt32 = 1,
                frames: [[UInt8]], headers: [String: String] = [:]) {
        storage = Storage(messageID: messageID, runID: runID, causationID: causationID, attempt: attempt,
                          payload: Payload(bytes: frames.first ?? []), frames: frames, headers: headers)
    }

    /// The storage, first copied when another message shares it.
    private mutating func unique() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    /// Changed only through ``unique()``, while no other message holds it, so shared storage is never
    /// written: that is what makes it safe to send.
    private final class Storage: @unchecked Sendable {
        var messageID: String
        var runID: String
        var causationID: String
        var attempt: UInt32
        var payload: Payload
        var frames: [[UInt8]]
        var headers: [String: String]

        init(messageID: String, runID: String, causationID: String, attempt: UInt32, payload: Payload,
             frames: [[UInt8]], headers: [String: String]) {
            self.messageID = messageID
            self.runID = runID
            self.causationID = causationID
            self.attempt = attempt
            self.payload = payload
            self.frames = frames
            self.headers = headers
        }

        func copy() -> Storage {
            Storage(messageID: messageID, runID: runID, causationID: causationID, attempt: attempt, payload: payload,
                    frames: frames, headers: headers)
        }
    }

    /// The instance key the message is for: the `key` header, or else the run id.
    public var key: String { headers[AgentMessage.keyHeader].flatMap { $0.isEmpty ? nil : $0 } ?? runID }

    /// The envelope header naming the instance key.
    public static let keyHeader = Envelope.keyHeader

    /// The handler's clock: the logged receive time, or for a fork's first message its parent's.
    func handlerTime(received: Timestamp) -> Timestamp {
        headers[Envelope.forkTimeHeader].flatMap(Int64.init).map(Timestamp.init(nanosecondsSinceEpoch:)) ?? received
    }

    /// What seeds the handler's random numbers: a fork's first message draws what its parent drew.
    var seedID: String { headers[Envelope.forkOriginHeader] ?? messageID }

    /// True when the handler re-executes (a redelivery, a fork, or a message that was itself asked
    /// again), so its asks may have answers already.
    var reissues: Bool {
        attempt > 1 || headers[Envelope.forkParentHeader] != nil || headers[Envelope.reissueHeader] != nil
    }
}
