// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire

/// What the broker does for native agents beyond MDP: determinism-lock entries, the handler's
/// clock, and the events agents emit alongside their messages.
extension BrokerStateMachine {
    /// The envelope header carrying the request's logged receive time (ns since the epoch).
    static let timeHeader = "time"

    /// Appends a `lock.recorded` event the first time a run is served by this version of a service.
    mutating func recordLock(_ request: Request, worker: Worker, now: Now, into output: inout Output) -> Bool {
        guard !request.runID.isEmpty else { return false }
        let entry = LockEntry(runID: request.runID, service: worker.service, version: worker.version,
                              configDigest: worker.configDigest)
        guard lockedServices.insert(entry) else { return false }
        output.events.append(RouterEvents.lockRecorded(runID: request.runID, service: worker.service,
                                                       version: worker.version, configDigest: worker.configDigest,
                                                       causationID: request.messageID, now: now.wall))
        return true
    }

    /// Splits the emitted events off a native body: the body as it is forwarded (its envelope
    /// without the count) and the events to log. Nil when they are malformed, or would not be
    /// accepted by the log: a bad event must be refused here, not fail a commit.
    static func takeEmitted(from body: [[UInt8]], envelope: Envelope) -> (body: [[UInt8]], events: [EmittedEvent])? {
        guard envelope.headers[EmittedEvent.headerName] != nil else { return (body, []) }
        guard let (stripped, events) = EmittedEvent.split(body, envelope: envelope),
              // An agent's event belongs to a stream: router events have none, and cannot be forged.
              events.allSatisfy({ !$0.type.isEmpty && !$0.streamID.isEmpty && JSONText.isValid($0.payload) })
        else { return nil }
        var envelope = envelope
        envelope.headers[EmittedEvent.headerName] = nil
        guard let encoded = try? envelope.encoded() else { return nil }
        return ([encoded] + stripped.dropFirst(), events)
    }

    /// Whether the stream of the instance (service, key) has no event, committed or not, so the
    /// host may make it fresh without asking `sb.state`. False when the log cannot tell.
    func instanceStateIsEmpty(service: String, key: String) -> Bool {
        guard let streamHasEvents else { return false }
        let stream = StateService.instanceStream(type: service, key: key)
        return !uncommittedStreams.contains(stream) && !streamHasEvents(stream)
    }
}

/// Streams given events in batches not yet committed: the log's index does not show them yet.
struct UncommittedStreams {
    /// Each stream's latest batch.
    private var latest: [String: UInt64] = [:]
    private var order: [(stream: String, batch: UInt64)] = []
    private var start = 0

    func contains(_ stream: String) -> Bool { latest[stream] != nil }

    mutating func insert(_ stream: String, batch: UInt64) {
        latest[stream] = batch
        order.append((stream, batch))
    }

    /// Forgets what batches up to `batch` gave: the index holds it now.
    mutating func committed(through batch: UInt64) {
        while start < order.count, order[start].batch <= batch {
            if let newest = latest[order[start].stream], newest <= batch {
                latest[order[start].stream] = nil
            }
            start += 1
        }
        if start == order.count {
            order.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1024 && start * 2 > order.count {
            order.removeFirst(start)
            start = 0
        }
    }
}

/// A run's use of a service version, as its determinism lock records it.
struct LockEntry: Hashable {
    var runID: String
    var service: String
    var version: String
    var configDigest: String
}

/// A set that remembers the newest `capacity` keys; older ones are forgotten in insertion order.
struct RecentKeys<Key: Hashable> {
    let capacity: Int
    private var keys: Set<Key> = []
    private var order: [Key] = []
    private var start = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Adds `key`; false when it is already remembered.
    mutating func insert(_ key: Key) -> Bool {
        guard keys.insert(key).inserted else { return false }
        order.append(key)
        if order.count - start > capacity {
            keys.remove(order[start])
            start += 1
            if start > capacity / 2 {
                order.removeFirst(start)
                start = 0
            }
        }
        return true
    }
}
