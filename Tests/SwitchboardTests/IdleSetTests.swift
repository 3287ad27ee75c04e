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
        }
    }

    @Test func reparkingOneKeyForeverKeepsTheQueueSmall() {
        var set = IdleSet<String, Int>()
        for step in 0..<100_000 { set.park(step, under: "only") }
        #expect(set.count == 1)
        #expect(set.queueLength <= 2 * set.count + 64)
        #expect(set.dropOldest() == 99_999)
    }
}
