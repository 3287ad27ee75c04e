// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import Testing
import TestSupport

@testable import SwitchboardRouter

@Suite struct PendingRequestsProjectionTests {
    @Test func keepsExactlyTheUnansweredRequestsAndRebuildsIdentically() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .none, projections: Router.projections))
            func event(_ type: String, _ id: String, causation: String = "") -> NewEvent {
                NewEvent(type: type, runID: "run", messageID: id, causationID: causation, payload: Array("{}".utf8))
            }
            try log.append([event("request.received", "a"), event("request.received", "b")])
            try log.append([event("request.received", "c"), event("request.redelivered", "b"),
                            event("reply.final", "a/final", causation: "a")])
            try log.append([event("request.redelivered", "b"), event("request.failed", "c/error", causation: "c"),
                            event("request.received", "d")])
            let state = try log.projectionState(named: PendingRequestsProjection.name)
            let pending = state.entries.map { (String(decoding: $0.key, as: UTF8.self), PendingRequestsProjection.decode($0.value)) }
            #expect(pending.map(\.0) == ["b", "d"])
            #expect(pending[0].1?.position == 2 && pending[0].1?.redeliveries == 2)
            #expect(pending[1].1?.position == 8 && pending[1].1?.redeliveries == 0)
            try log.rebuildProjection(named: PendingRequestsProjection.name)
            #expect(try log.projectionState(named: PendingRequestsProjection.name) == state)
        }
    }
}
