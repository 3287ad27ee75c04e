// SPDX-License-Identifier: Apache-2.0
import SwitchboardWire

/// Values parked under keys in the order they were parked, so the least recently parked go first
/// without sorting: parking, taking and dropping the oldest are O(1), amortized.
///
/// The order is kept as a queue of (key, stamp); taking a value or parking its key again leaves
/// the old queue entry behind, skipped when it reaches the front and swept out once such entries
/// outnumber the live ones.
struct IdleSet<Key: Hashable, Value> {
    private var entries: [Key: (value: Value, stamp: UInt64)] = [:]
    private var order = FIFOQueue<(key: Key, stamp: UInt64)>()
    private var nextStamp: UInt64 = 0

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    /// Queue entries held, live and left behind (for tests).
    var queueLength: Int { order.count }

    /// Parks `value` under `key` as the most recent; a value already there is replaced.
    mutating func park(_ value: Value, under key: Key) {
        nextStamp += 1
        entries[key] = (value, nextStamp)
        order.append((key, nextStamp))
        if order.count > 2 * entries.count + 64 {
            let entries = entries
            order.removeAll { entries[$0.key]?.stamp != $0.stamp }
        }
    }

    /// Takes the value parked under `key` out of the set.
    mutating func take(_ key: Key) -> Value? {
        entries.removeValue(forKey: key)?.value
    }

    /// The least recently parked value, left in the set.
    var oldest: Value? {
        mutating get {
            skipStale()
            return order.first.flatMap { entries[$0.key]?.value }
        }
    }

    /// Drops the least recently parked value; returns it.
    @discardableResult
    mutating func dropOldest() -> Value? {
        skipStale()
        return order.popFirst().flatMap { entries.removeValue(forKey: $0.key)?.value }
    }

    /// Drops the least recently parked values, oldest first, while `drop` holds for the oldest
    /// value and the count parked; appends them to `dropped`. One hash lookup a value: the host
    /// passivates after every message it handles.
    mutating func dropOldest(into dropped: inout [Value], while drop: (Value, Int) -> Bool) {
        while let front = order.first {
            guard let index = entries.index(forKey: front.key), entries[index].value.stamp == front.stamp else {
                order.popFirst()
                continue
            }
            guard drop(entries[index].value.value, entries.count) else { return }
            order.popFirst()
            dropped.append(entries.remove(at: index).value.value)
        }
    }

    private func isStale(_ entry: (key: Key, stamp: UInt64)) -> Bool {
        entries[entry.key]?.stamp != entry.stamp
    }

    private mutating func skipStale() {
        while let front = order.first, isStale(front) { order.popFirst() }
    }
}
