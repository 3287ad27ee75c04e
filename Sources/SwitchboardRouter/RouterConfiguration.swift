// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog

/// How a ``Router`` behaves.
public struct RouterConfiguration: Sendable {
    /// The ROUTER socket's endpoint: `tcp://host:port`, `ipc://path` or `inproc://name`.
    public var endpoint: String
    /// The XPUB endpoint of the event bus; nil for none.
    public var eventsEndpoint: String?
    /// Heartbeat interval towards workers, in milliseconds.
    public var heartbeatInterval: Int
    /// Missed intervals after which a worker is dead and its requests are redelivered.
    public var heartbeatLiveness: Int
    /// How long a request for a service with no worker waits for one to appear (ms).
    public var unknownServiceGrace: Int
    /// How long a request may wait for a worker before it fails as expired (ms).
    public var requestExpiry: Int
    /// Requests queued per service before new ones fail with `queue_full`.
    public var maximumQueueLength: Int
    /// Largest request or reply body, all frames together, in bytes.
    public var maximumBodySize: Int
    /// Most frames in one request or reply body: each adds bytes to the logged event.
    public var maximumFrames: Int
    /// Messages read from the socket per poll cycle at most. Committed frames go out between cycles,
    /// so a large batch holds them back (and the peers waiting on them) while it is decided.
    public var maximumBatch: Int
    /// The policy gate; nil lets every request through without a decision event.
    public var policy: Policy?
    /// Answers to native requests kept in memory for clients that ask again; older ones are read
    /// from the log when a re-executing handler asks again.
    public var rememberedAnswers: Int
    /// Milliseconds an instance key stays with its worker after its last message. Keep it above the
    /// agent hosts' idle timeout, so that no host keeps an instance whose key moved on.
    public var keyAffinityTimeout: Int

    public init(
        endpoint: String,
        eventsEndpoint: String? = nil,
        heartbeatInterval: Int = 2500,
        heartbeatLiveness: Int = 3,
        unknownServiceGrace: Int = 2000,
        requestExpiry: Int = 60_000,
        maximumQueueLength: Int = 10_000,
        maximumBodySize: Int = 4 << 20,
        maximumFrames: Int = 1024,
        maximumBatch: Int = 64,
        policy: Policy? = nil,
        rememberedAnswers: Int = 10_000,
        keyAffinityTimeout: Int = 600_000
    ) {
        self.keyAffinityTimeout = keyAffinityTimeout
        self.rememberedAnswers = max(1, rememberedAnswers)
        self.policy = policy
        self.endpoint = endpoint
        self.eventsEndpoint = eventsEndpoint
        self.heartbeatInterval = heartbeatInterval
        self.heartbeatLiveness = heartbeatLiveness
        self.unknownServiceGrace = unknownServiceGrace
        self.requestExpiry = requestExpiry
        self.maximumQueueLength = maximumQueueLength
        self.maximumBodySize = maximumBodySize
        self.maximumFrames = maximumFrames
        self.maximumBatch = maximumBatch
    }
}
