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
            // An agent's events, in its stream, named like the router's: they change nothing.
            var forged = [event("reply.final", "x/final", causation: "b"), event("request.received", "e")]
            for index in forged.indices { forged[index].streamID = "agent/mischief/run" }
            try log.append(forged)
            let state = try log.projectionState(named: PendingRequestsProjection.name)
            let pending = state.entries.map { (String(decoding: $0.key, as: UTF8.self), PendingRequestsProjection.decode($0.value)) }
            #expect(pending.map(\.0) == ["b", "d"])
            #expect(pending[0].1?.position == 2 && pending[0].1?.redeliveries == 2)
            #expect(pending[1].1?.position == 8 && pending[1].1?.redeliveries == 0)
            try log.rebuildProjection(named: PendingRequestsProjection.name)
            #expect(try log.projectionState(named: PendingRequestsProjection.name) == state)
        }
    }

    @Test func anAgentsEventCannotDecideAnApproval() throws {
        try withTemporaryDirectory { dir in
            let log = try EventLog.open(at: dir, configuration: .init(durability: .none,
                                                                      projections: [ApprovalsProjection()]))
            let requested = #"{"id":"ap-1","kind":"policy","service":"tool.x","agent":"a","title":"t","request":"m"}"#
            var decided = NewEvent(type: "approval.decided", runID: "run", json: #"{"id":"ap-1","status":"approved"}"#)
            decided.streamID = "agent/mischief/run"
            try log.append([NewEvent(type: "approval.requested", runID: "run", json: requested), decided])
            #expect(try ApprovalsProjection.records(in: log).map(\.status) == ["pending"])
        }
    }
}
