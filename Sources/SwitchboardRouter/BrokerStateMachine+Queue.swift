// SPDX-License-Identifier: Apache-2.0
import SwitchboardWire

extension BrokerStateMachine {
    /// A service's waiting requests, oldest first. Taking the first only moves a start index; the
    /// taken slots are dropped now and then (``compact()``).
    ///
    /// Two questions would otherwise cost a pass over the whole queue each time, which a backlog of
    /// many thousand requests makes expensive: which request a re-sent id names (a reconnected host
    /// re-sends every ask it has open), and whether any request is due to expire (asked every
    /// cycle). The first builds an index by message id on demand, kept until entries move; the
    /// second keeps lower bounds of the expiry and arrival times, so the queue is read only when
    /// one may be due.
    struct RequestQueue {
        private var requests: [Request] = []
        private var start = 0
        /// Message id → index in `requests`, from `start` on; nil until a search needs it.
        private var positions: [String: Int]?
        /// No waiting request expires before this, or was received before ``earliestReceived``.
        /// Taking requests leaves the bounds low, which only makes the next check read the queue.
        private var earliestExpiry = Int64.max
        private var earliestReceived = Int64.max

        var count: Int { requests.count - start }
        var isEmpty: Bool { requests.count == start }

        mutating func append(_ request: Request) {
            if positions != nil { positions?[request.messageID] = requests.count }
            requests.append(request)
            lowerBounds(for: request)
        }

        /// Puts `front` ahead of the rest, in its order.
        mutating func prepend(_ front: [Request]) {
            guard !front.isEmpty else { return }
            requests = front + requests[start...]
            start = 0
            positions = nil
            for request in front { lowerBounds(for: request) }
        }

        /// Takes the first request; ``putBack()`` undoes it.
        mutating func removeFirst() -> Request {
            defer { start += 1 }
            return requests[start]
        }

        mutating func putBack() {
            start -= 1
        }

        /// Drops the slots of requests taken, once they are most of the storage.
        mutating func compact() {
            guard start > 64 && start * 2 > requests.count else { return }
            requests.removeFirst(start)
            start = 0
            positions = nil
        }

        /// Whether a request may be due: past its expiry, or (when the service has no worker)
        /// waiting longer than `grace` milliseconds.
        func mayBeDue(now: Int64, hasWorkers: Bool, grace: Int64) -> Bool {
            !isEmpty && (now >= earliestExpiry || (!hasWorkers && now - grace >= earliestReceived))
        }

        /// Removes the requests `isDue` picks, in order, and sets the bounds from those left.
        mutating func removeAll(where isDue: (Request) -> Bool) -> [Request] {
            var kept: [Request] = []
            var removed: [Request] = []
            earliestExpiry = .max
            earliestReceived = .max
            for request in requests[start...] {
                if isDue(request) {
                    removed.append(request)
                } else {
                    lowerBounds(for: request)
                    kept.append(request)
                }
            }
            if !removed.isEmpty {
                requests = kept
                start = 0
                positions = nil
            }
            return removed
        }

        /// Gives the waiting request `messageID`, if there is one, a new client address.
        mutating func attach(_ messageID: String, to client: [UInt8], framing: MDPFraming) -> Bool {
            if positions == nil {
                var built: [String: Int] = [:]
                built.reserveCapacity(count)
                for index in start..<requests.count { built[requests[index].messageID] = index }
                positions = built
            }
            guard let index = positions?[messageID], index >= start, index < requests.count,
                  requests[index].messageID == messageID
            else { return false }
            requests[index].attach(client, framing: framing)
            return true
        }

        private mutating func lowerBounds(for request: Request) {
            earliestExpiry = min(earliestExpiry, request.expiresAt)
            earliestReceived = min(earliestReceived, request.receivedAt)
        }
    }
}
