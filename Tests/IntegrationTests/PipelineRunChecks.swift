// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import Testing

/// Checks that a log holds `runs` pipeline runs, each done exactly once: one start, one answer,
/// one counter addition, its stream's three steps, and no event of it logged in another run.
/// Returns the runs that had a request redelivered.
@discardableResult
func expectEachPipelineRunOnce(in log: EventLog, runs: Int,
                               sourceLocation: SourceLocation = #_sourceLocation) throws -> Set<String> {
    #expect(try log.verify().isSound, sourceLocation: sourceLocation)
    let events = try log.events()
    let starts = events.filter { $0.type == "request.received" && $0.messageID.hasSuffix("/start") }
    #expect(starts.count == runs && Set(starts.map(\.runID)).count == runs, sourceLocation: sourceLocation)
    var answers: [String: Int] = [:]
    var additions: [String: Int] = [:]
    var redelivered: Set<String> = []
    for event in events {
        switch event.type {
        case "reply.final" where event.messageID.hasSuffix("/start/final"): answers[event.runID, default: 0] += 1
        case "counter.added": additions[event.runID, default: 0] += 1
        case "request.redelivered": redelivered.insert(event.runID)
        default: break
        }
    }
    #expect(starts.allSatisfy { answers[$0.runID] == 1 }, "a run was answered twice or never",
            sourceLocation: sourceLocation)
    #expect(starts.allSatisfy { additions[$0.runID] == 1 }, "a counter ask was handled twice or never",
            sourceLocation: sourceLocation)
    // An answer that went to another request logs its events in that request's run.
    let strays = events.filter { $0.messageID.hasPrefix("run-") && !$0.messageID.hasPrefix($0.runID) }
    #expect(strays.isEmpty, "\(strays.prefix(3).map { "\($0.position) \($0.type) \($0.runID) \($0.messageID)" })",
            sourceLocation: sourceLocation)
    for start in starts {
        #expect(try log.streamVersion("agent/pipeline/\(start.runID)") == 3, "\(start.runID)",
                sourceLocation: sourceLocation)
    }
    return redelivered
}
