// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwitchboardLog
import SwitchboardWire

/// Finds the requests a previous router committed but never answered.
enum RouterRecovery {
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

    /// Every request received and neither finally answered nor failed, in arrival order.
    static func pendingRequests(in log: EventLog) throws -> [BrokerStateMachine.Request] {
        var pending: [String: BrokerStateMachine.Request] = [:]
        var order: [String] = []
        let decoder = JSONDecoder()
        try log.scan { view in
            switch view.type {
            case RouterEvents.requestReceived:
                let payload = view.withPayload { Data($0) }
                guard let request = try? decoder.decode(RequestPayload.self, from: payload) else { return true }
                let body = request.body.compactMap { Data(base64Encoded: $0).map { [UInt8]($0) } }
                let native = body.first.map(Envelope.isEnvelope) ?? false
                pending[view.messageID] = BrokerStateMachine.Request(
                    messageID: view.messageID, runID: view.runID, service: request.service,
                    client: RouterEvents.unhex(request.client) ?? [],
                    clientFraming: request.framing == "delimited" ? .delimited : .plain, native: native, body: body,
                    attempt: UInt32(clamping: request.attempt), receivedAt: 0, expiresAt: 0)
                order.append(view.messageID)
            case RouterEvents.requestRedelivered:
                let payload = view.withPayload { Data($0) }
                if let attempt = try? decoder.decode(AttemptPayload.self, from: payload) {
                    pending[view.messageID]?.attempt = UInt32(clamping: attempt.attempt)
                }
            case RouterEvents.replyFinal, RouterEvents.requestFailed:
                pending[view.causationID] = nil
            default:
                break
            }
            return true
        }
        return order.compactMap { pending.removeValue(forKey: $0) }
    }
}
