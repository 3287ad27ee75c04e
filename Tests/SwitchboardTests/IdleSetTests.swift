// SPDX-License-Identifier: Apache-2.0
@testable import Switchboard
import Testing

@Suite struct IdleSetTests {
    @Test func theLeastRecentlyParkedGoFirst() {
        var set = IdleSet<String, Int>()
        for (index, key) in ["a", "b", "c", "d"].enumerated() { set.park(index, under: key) }
        // Taking b and parking a again moves a to the recent end; b is gone.
        #expect(set.take("b") == 1)
        #expect(set.take("b") == nil)
        set.park(10, under: "a")
        #expect(set.count == 3)
        #expect(set.oldest == 2)
        #expect(set.dropOldest() == 2)
        #expect(set.dropOldest() == 3)
        #expect(set.dropOldest() == 10)
        #expect(set.dropOldest() == nil)
        #expect(set.isEmpty && set.oldest == nil)
    }

    @Test func itMatchesAnOrderedModelOverManyOperations() {
        var set = IdleSet<Int, Int>()
        var model: [(key: Int, value: Int)] = []
        var generator = SystemRandomNumberGenerator()
        for step in 0..<50_000 {
            let key = Int.random(in: 0..<300, using: &generator)
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:
                set.park(step, under: key)
                model.removeAll { $0.key == key }
                model.append((key, step))
            case 5..<8:
                let expected = model.firstIndex { $0.key == key }.map { model.remove(at: $0).value }
                #expect(set.take(key) == expected)
            default:
                #expect(set.dropOldest() == (model.isEmpty ? nil : model.removeFirst().value))
            }
            #expect(set.count == model.count)
            #expect(set.oldest == model.first?.value)
            if step % 1000 == 999 {
                // Passivation's way: drop down to a bound in one pass.
                let bound = Int.random(in: 0..<200, using: &generator)
                var dropped: [Int] = []
                set.dropOldest(into: &dropped) { _, count in count > bound }
                let expected = model.count > bound ? model.prefix(model.count - bound).map(\.value) : []
                model.removeFirst(expected.count)
                #expect(dropped == expected)
            }
        }
    }

    @Test func droppingWhileAConditionHoldsStopsAtTheFirstOldestItRefuses() {
        var set = IdleSet<String, Int>()
        for (index, key) in ["a", "b", "c", "d", "e"].enumerated() { set.park(index, under: key) }
        // Stale queue entries at the front are skipped, not shown to the condition.
        #expect(set.take("a") == 0)
        set.park(10, under: "b")
        var dropped: [Int] = []
        var seen: [(Int, Int)] = []
        set.dropOldest(into: &dropped) { value, count in
            seen.append((value, count))
            return count > 2
        }
        #expect(dropped == [2, 3])
        #expect(seen.map(\.0) == [2, 3, 4] && seen.map(\.1) == [4, 3, 2])
        #expect(set.count == 2 && set.oldest == 4)
        set.dropOldest(into: &dropped) { value, _ in value < 100 }
        #expect(dropped == [2, 3, 4, 10] && set.isEmpty)
    }

    @Test func reparkingOneKeyForeverKeepsTheQueueSmall() {
        var set = IdleSet<String, Int>()
        for step in 0..<100_000 { set.park(step, under: "only") }
        #expect(set.count == 1)
        #expect(set.queueLength <= 2 * set.count + 64)
        #expect(set.dropOldest() == 99_999)
    }
}
