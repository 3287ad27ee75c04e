// SPDX-License-Identifier: Apache-2.0

/// A first-in first-out queue over an array: taking from the front moves an index, and the taken
/// front is let go once it is most of the storage, so every operation is O(1) amortized.
package struct FIFOQueue<Element> {
    private var storage: [Element] = []
    private var head = 0

    package init() {}

    package var count: Int { storage.count - head }
    package var first: Element? { head < storage.count ? storage[head] : nil }

    package mutating func append(_ element: Element) {
        storage.append(element)
    }

    @discardableResult
    package mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Drops the elements `shouldBeRemoved` picks, keeping the others in order.
    package mutating func removeAll(where shouldBeRemoved: (Element) -> Bool) {
        storage = storage[head...].filter { !shouldBeRemoved($0) }
        head = 0
    }
}
