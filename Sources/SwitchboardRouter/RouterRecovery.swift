// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwitchboardLog
import SwitchboardWire

/// Reads back from the log what a previous router left open or may not have delivered.
enum RouterRecovery {
    struct Recovered {
        /// Requests received and neither finally answered nor failed, in arrival order.
        var pending: [BrokerStateMachine.Request] = []
        /// The most recent answered native requests and their answers (the newest 10,000).
        var answered: [(BrokerStateMachine.Request, BrokerStateMachine.RecoveredOutcome)] = []
    }

    private struct RequestPayload: Decodable {
        var service: String
        var client: String
        var framing: String
        var attempt: Int
        var body: [String]
    }

    private struct AttemptPayload: Decodable {
        var attempt: Int
    }

    private struct FinalPayload: Decodable {
        var body: [String]
    }

    private struct FailurePayload: Decodable {
        var error: String
        var message: String
    }

    static let answeredKept = 10_000

    static func recover(from log: EventLog) throws -> Recovered {
        var pending: [String: BrokerStateMachine.Request] = [:]
        var order: [String] = []
        var answered: [(BrokerStateMachine.Request, BrokerStateMachine.RecoveredOutcome)] = []
        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ view: EventView) -> T? {
            try? decoder.decode(type, from: view.withPayload { Data($0) })
        }
        try log.scan { view in
            switch view.type {
            case RouterEvents.requestReceived:
                guard let request = decode(RequestPayload.self, view) else { return true }
                let body = request.body.compactMap { Data(base64Encoded: $0).map { [UInt8]($0) } }
                pending[view.messageID] = BrokerStateMachine.Request(
                    messageID: view.messageID, runID: view.runID, service: request.service,
                    client: RouterEvents.unhex(request.client) ?? [],
                    clientFraming: request.framing == "delimited" ? .delimited : .plain,
                    native: body.first.map(Envelope.isEnvelope) ?? false, body: body,
                    attempt: UInt32(clamping: request.attempt), receivedAt: 0, expiresAt: 0)
                order.append(view.messageID)
            case RouterEvents.requestRedelivered:
                if let attempt = decode(AttemptPayload.self, view) {
                    pending[view.messageID]?.attempt = UInt32(clamping: attempt.attempt)
                }
            case RouterEvents.replyFinal, RouterEvents.requestFailed:
                guard let request = pending.removeValue(forKey: view.causationID), request.native else { return true }
                if view.type == RouterEvents.replyFinal, let final = decode(FinalPayload.self, view) {
                    let body = final.body.compactMap { Data(base64Encoded: $0).map { [UInt8]($0) } }
                    answered.append((request, .final(body)))
                } else if let failure = decode(FailurePayload.self, view) {
                    answered.append((request, .failed(code: failure.error, message: failure.message)))
                }
                if answered.count > 2 * answeredKept { answered.removeFirst(answeredKept) }
            default:
                break
            }
            return true
        }
        return Recovered(pending: order.compactMap { pending.removeValue(forKey: $0) },
                         answered: Array(answered.suffix(answeredKept)))
    }
}
