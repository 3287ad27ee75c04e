// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import Switchboard

/// Replay finds requests by id through a table keyed by a hash of the id's bytes: ids whose
/// hashes collide must still be told apart, and a repeated id must find its last record.
@Suite struct RequestTableTests {
    @Test func collidingHashesAreToldApartAndARepeatedIDFindsItsLastRecord() {
        let ids = ["run-1>1", "run-1>2", "run-1>3", "run-1>2"]
        var table = RequestTable()
        // Every id under one hash, as if all collided.
        for (index, id) in ids.enumerated() {
            table.insert(index, hash: 7) { ids[$0] == id }
        }
        func find(_ id: String, hash: UInt64 = 7) -> Int? { table.find(hash) { ids[$0] == id } }
        #expect(find("run-1>1") == 0)
        #expect(find("run-1>2") == 3)
        #expect(find("run-1>3") == 2)
        #expect(find("run-1>4") == nil)
        #expect(find("run-1>1", hash: 8) == nil)
    }

    /// The table grows as a run's requests are added: every id is still found after each growth,
    /// and ids it never held are not.
    @Test func everyIDIsFoundAcrossGrowth() {
        let ids = (0..<5_000).map { "run-7>\($0)" }
        var table = RequestTable()
        func find(_ id: String) -> Int? { table.find(RequestTable.hash(id)) { ids[$0] == id } }
        for (index, id) in ids.enumerated() {
            table.insert(index, hash: RequestTable.hash(id)) { ids[$0] == id }
            if index.isMultiple(of: 997) { #expect(find(ids[index / 2]) == index / 2) }
        }
        #expect(ids.indices.allSatisfy { find(ids[$0]) == $0 })
        #expect(find("run-7>5000") == nil)
        #expect(find("run-8>1") == nil)
    }

    @Test func theHashFollowsTheUTF8() {
        let id = "run-é>1"
        #expect(RequestTable.hash(id) == Array(id.utf8).withUnsafeBytes(RequestTable.hash))
        #expect(RequestTable.hash(id) != RequestTable.hash("run-e>1"))
        #expect(RequestTable.hash(id) != RequestTable.hash("run-é>2"))
    }
}
