// SPDX-License-Identifier: Apache-2.0

/// Values parked under keys in the order they were parked, so the least recently parked go first
/// without sorting: parking, taking and dropping the oldest are O(1), amortized.
///
/// The order is kept as a queue of (key, stamp); taking a value or parking its key again leaves
/// the old queue entry behind, skipped when it reaches the front and swept out once such entries
/// outnumber the live ones.
struct IdleSet<Key: Hashable, Value> {
    private var entries: [Key: (value: Value, stamp: UInt64)] = [:]
    private var order: [(key: Key, stamp: UInt64)] = []
    private var head = 0
    private var nextStamp: UInt64 = 0

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    /// Queue entries held, live and left behind (for tests).
    var queueLength: Int { order.count - head }

    /// Parks `value` under `key` as the most recent; a value already there is replaced.
    mutating func park(_ value: Value, under key: Key) {
        nextStamp += 1
        entries[key] = (value, nextStamp)
        order.append((key, nextStamp))
        if order.count - head > 2 * entries.count + 64 { sweep() }
    }

    /// Takes the value parked under `key` out of the set.
    mutating func take(_ key: Key) -> Value? {
        entries.removeValue(forKey: key)?.value
    }

    /// The least recently parked value, left in the set.
    var oldest: Value? {
        mutating get {
            skipStale()
            return head < order.count ? entries[order[head].key]?.value : nil
        }
    }

    /// Drops the least recently parked value; returns it.
    @discardableResult
    mutating func dropOldest() -> Value? {
        skipStale()
        guard head < order.count else { return nil }
        let key = order[head].key
        head += 1
        compact()
        return entries.removeValue(forKey: key)?.value
    }

    private mutating func skipStale() {
        while head < order.count, entries[order[head].key]?.stamp != order[head].stamp { head += 1 }
        compact()
    }

    /// Lets go of the queue's consumed front once it is half the storage.
    private mutating func compact() {
        if head == order.count {
            order.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head > order.count / 2 {
            order.removeFirst(head)
            head = 0
        }
    }

    /// Keeps only the queue entries of parked values, in order.
    private mutating func sweep() {
        order = order[head...].filter { entries[$0.key]?.stamp == $0.stamp }
        head = 0
    }
}
