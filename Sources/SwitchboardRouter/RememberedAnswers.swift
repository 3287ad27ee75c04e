// SPDX-License-Identifier: Apache-2.0
import SwitchboardWire

/// Final replies of recently finished native requests, by message id, for clients that ask
/// again; the oldest are forgotten past `limit`.
struct RememberedAnswers {
    let limit: Int
    private var replies: [Prehashed<String>: [[UInt8]]] = [:]
    private var order: [Prehashed<String>] = []

    init(limit: Int) {
        self.limit = limit
    }

    subscript(messageID: String) -> [[UInt8]]? {
        replies[Prehashed(messageID)]
    }

    mutating func remember(_ messageID: String, reply: [[UInt8]]) {
        let key = Prehashed(messageID)
        if replies.updateValue(reply, forKey: key) == nil {
            order.append(key)
        }
        if order.count > limit {
            // Forgets a tenth at a time, so that the array shifts rarely.
            let drop = max(1, limit / 10)
            for old in order.prefix(drop) { replies[old] = nil }
            order.removeFirst(drop)
        }
    }
}
