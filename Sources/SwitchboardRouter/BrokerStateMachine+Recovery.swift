// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire

/// What a restarted router takes back from the log: answers to remember, pending requests, and
/// the control plane's state (paused and cancelled runs, approvals, usage).
extension BrokerStateMachine {
    /// Remembers the answer a previous router committed for a native request, so that a client
    /// asking again with the same message id gets it (the answer may never have left that router).
    mutating func rememberRecovered(_ request: Request, outcome: RecoveredOutcome) {
        switch outcome {
        case .final(let body):
            answers.remember(request.messageID, reply: MDPCodec.clientReply(
                .final, service: request.service, body: clientBody(request, body, final: true),
                framing: request.clientFraming))
        case .failed(let code, let message):
            answers.remember(request.messageID, reply: errorReply(request, code: code, message: message))
        }
    }

    enum RecoveredOutcome {
        case final([[UInt8]])
        case failed(code: String, message: String)
    }

    /// Takes back a request recovered from the log after a restart (attempt already raised):
    /// queued, or parked again where it waited for a human, a timer or a resume.
    mutating func enqueueRecovered(_ request: Request, now: Now, into output: inout Output) {
        var request = request
        request.arrival = nextArrival()
        // An address ZeroMQ generated (a zero first byte) named a connection to the previous router.
        request.clientIsStale = request.client.first == 0
        admitRecovered(request, now: now, into: &output)
    }

    /// Reads paused and cancelled runs, approvals and usage from the log's projections.
    mutating func loadControlState(from log: EventLog, policy: Policy?) throws {
        control.policy = policy
        control.runState = { [log] run in (try? log.runStatus(run))??.state.rawValue }
        // A stream the log cannot read counts as having events: the host then asks `sb.state`.
        streamHasEvents = { [log] stream in ((try? log.streamVersion(stream)) ?? 1) > 0 }
        for run in try log.runs() {
            if run.state == .paused { control.modes[run.runID] = .paused }
            if run.state == .cancelled { control.modes[run.runID] = .cancelled }
        }
        if log.projectionNames.contains(ApprovalsProjection.name) {
            for record in try ApprovalsProjection.records(in: log)
            where record.status == "pending" || record.kind == "policy" {
                control.recovered[record.id] = record
            }
        }
        if policy?.hasLimits == true, log.projectionNames.contains(UsageProjection.name) {
            for entry in try log.projectionState(named: UsageProjection.name).entries {
                let key = String(decoding: entry.key, as: UTF8.self)
                if key.hasPrefix("run/"), let totals = UsageTotals(encoded: entry.value) {
                    control.runCost[String(key.dropFirst(4))] = totals.costMicroUSD
                } else if key.hasPrefix("day/"), let totals = UsageTotals(encoded: entry.value) {
                    control.dayCost[String(key.dropFirst(4))] = totals.costMicroUSD
                } else if key.hasPrefix("calls/"), let count = UsageTotals.decodeCount(entry.value) {
                    // calls/<rule>/<run> → "<rule>\0<run>"; rule names hold no slash of concern here.
                    let rest = key.dropFirst(6)
                    if let slash = rest.firstIndex(of: "/") {
                        control.calls["\(rest[..<slash])\u{0}\(rest[rest.index(after: slash)...])"] = count
                    }
                }
            }
        }
    }

    /// A recovered request goes back where it waited: its approval, its timer, its paused run.
    mutating func admitRecovered(_ request: Request, now: Now, into output: inout Output) {
        control.remember(request.messageID, service: request.service)
        let id = Self.approvalID(request.messageID)
        if let record = control.recovered.removeValue(forKey: id) {
            switch record.status {
            case "pending":
                // Open like a request that `admit` parks: asked again, it is attached, not logged anew.
                if request.native { openNative.insert(Prehashed(request.messageID)) }
                control.parked[id] = ControlState.Parked(record: record, request: request)
                return
            case "approved":
                return admit(request, now: now, into: &output, evaluatePolicy: false)
            default:
                return fail(request, code: "approval_rejected",
                            message: "the request to \(request.service) was \(record.status): \(record.reason ?? "")",
                            now: now, into: &output)
            }
        }
        // Anything else was let through before the restart (or arrived before a policy was set).
        admit(request, now: now, into: &output, evaluatePolicy: false)
    }

}
