// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog
import SwitchboardWire

/// What the broker keeps per request, and which worker holds each agent instance key.
extension BrokerStateMachine {
    struct Request {
        var messageID: String
        var runID: String
        /// The message that caused this request (a native client's envelope says; empty for none).
        var causationID: String = ""
        var service: String
        var client: [UInt8]
        var clientFraming: MDPFraming
        var native: Bool
        var body: [[UInt8]]
        var attempt: UInt32
        var receivedAt: Int64
        var expiresAt: Int64
        /// When it was first received, as logged: native workers get it as the handler's clock.
        var receivedWall = Timestamp(nanosecondsSinceEpoch: 0)
        /// Arrival order, kept across redeliveries.
        var arrival: UInt64 = 0
        /// The client address the worker was given; a plain worker's reply names it.
        var dispatchedClient: [UInt8] = []
        /// `client` is an address ZeroMQ generated for a connection to a previous router (recovered
        /// from the log): this router hands the same addresses out again, to other peers, so
        /// nothing is sent to it. The client asks again and is attached.
        var clientIsStale = false
        /// Where answers go: nowhere (empty) while the client's address is stale.
        var replyAddress: [UInt8] { clientIsStale ? [] : client }

        /// Answers go to `client` from now on: it asked again.
        mutating func attach(_ client: [UInt8], framing: MDPFraming) {
            self.client = client
            clientFraming = framing
            clientIsStale = false
        }
        /// The batch whose commit holds this request's latest event.
        var batch: UInt64 = 0
        /// The agent instance it is for (native requests; empty for plain ones): see ``pins``.
        var key = ""

        /// A native body's instance key: its envelope's `key` header, or else the run.
        static func instanceKey(of envelope: Envelope?, runID: String) -> String {
            guard let envelope else { return "" }
            return envelope.headers[Envelope.keyHeader].flatMap { $0.isEmpty ? nil : $0 } ?? runID
        }
    }

    /// Which worker holds each (service, instance key): every message of a key goes to it while it
    /// lives, so one host has the instance and handles its messages in order. A pin unused for
    /// ``RouterConfiguration/keyAffinityTimeout`` is dropped.
    struct Pin {
        var worker: [UInt8]
        var lastUsed: Int64
    }

    /// A pinned instance: a service and an instance key.
    struct PinKey: Hashable {
        var service: String
        var key: String
    }

    /// The key in flight at `worker` of the request a reply answers.
    /// - Parameters:
    ///   - causationID: that of the reply's envelope; nil for a reply without one.
    ///   - envelope: the reply's envelope frame, read for its message id only when the causation
    ///     id names no request in flight.
    static func answered(in worker: Worker, causationID: String?, envelope: [UInt8]?, client: [UInt8]) -> String? {
        if let causationID {
            // A reply names its request by causation id; a worker echoing the request's envelope, by message id.
            if worker.inFlight[causationID] != nil { return causationID }
            // Naming none in flight, it is late or repeated (a re-executed handler's second answer):
            // matched by address, it would answer another request of the same client.
            guard let key = envelope.flatMap({ try? Envelope(decoding: $0) })?.messageID else { return nil }
            return worker.inFlight[key] != nil ? key : nil
        }
        // By the address the worker was given, when exactly one request in flight has it.
        let matches = worker.inFlight.filter { $0.value.dispatchedClient == client }
        return matches.count == 1 ? matches.first?.key : nil
    }

    /// Drops pins unused for the affinity timeout (checked once a minute at most).
    mutating func sweepPins(now: Now) {
        guard now.milliseconds >= nextPinSweep else { return }
        nextPinSweep = now.milliseconds + 60_000
        let oldest = now.milliseconds - Int64(configuration.keyAffinityTimeout)
        // A key with a message still in flight keeps its worker, however long ago it was sent.
        var busy: Set<PinKey> = []
        for worker in workers.values {
            for request in worker.inFlight.values where !request.key.isEmpty {
                busy.insert(PinKey(service: worker.service, key: request.key))
            }
        }
        pins = pins.filter { $0.value.lastUsed >= oldest || busy.contains($0.key) }
    }

    /// A native client correlates replies by message id: give it an envelope when the worker did not.
    func clientBody(_ request: Request, _ body: [[UInt8]], final: Bool) -> [[UInt8]] {
        if !request.native {
            // A plain MDP client gets a plain body, whoever answered.
            return body.first.map(Envelope.isEnvelope) == true ? Array(body.dropFirst()) : body
        }
        guard body.first.map(Envelope.isEnvelope) != true,
              let envelope = try? Envelope(messageID: request.messageID + (final ? "/final" : "/partial"),
                                           runID: request.runID, causationID: request.messageID).encoded()
        else { return body }
        return [envelope] + body
    }

    func errorReply(_ request: Request, code: String, message: String) -> [[UInt8]] {
        Self.errorFrames(service: request.service, framing: request.clientFraming, native: request.native,
                         messageID: request.messageID, runID: request.runID, code: code, message: message)
    }

    static func errorFrames(service: String, framing: MDPFraming, native: Bool, messageID: String,
                            runID: String, code: String, message: String) -> [[UInt8]] {
        var body = [RouterEvents.errorBody(code: code, message: message)]
        if native, let envelope = try? Envelope(messageID: messageID + "/error", runID: runID, causationID: messageID,
                                                headers: ["status": "error"]).encoded() {
            body.insert(envelope, at: 0)
        }
        return MDPCodec.clientReply(.final, service: service, body: body, framing: framing)
    }
}
