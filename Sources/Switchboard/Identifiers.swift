// SPDX-License-Identifier: Apache-2.0
import SwitchboardLog

/// Deterministic ids: the same run re-executed derives the same ids, which is what lets an ask
/// re-issued during recovery attach to the one already logged or in flight.
enum Identifiers {
    /// The router accepts message ids up to 200 bytes.
    static let maximumLength = 200

    static func digest(_ text: String) -> String {
        SHA256Digest.of(text.utf8).description
    }

    /// The id of the `sequence`-th ask made while handling `messageID` (1-based).
    static func ask(_ messageID: String, _ sequence: Int) -> String {
        shortened(numbered(messageID, ">", sequence))
    }

    /// The id of the `sequence`-th event emitted while handling `messageID` (1-based).
    static func event(_ messageID: String, _ sequence: Int) -> String {
        shortened(numbered(messageID, "!", sequence))
    }

    /// `id`, `mark` and `sequence` in one allocation: ids are made for every ask and event.
    private static func numbered(_ id: String, _ mark: String, _ sequence: Int) -> String {
        var result = id
        result.reserveCapacity(id.utf8.count + mark.utf8.count + 20)
        result += mark
        result += String(sequence)
        return result
    }

    /// The id of the reply to `messageID`.
    static func reply(_ messageID: String) -> String {
        shortened("\(messageID)/reply")
    }

    /// Long ids (deep chains of asks) keep a readable head and a digest of the whole.
    static func shortened(_ id: String) -> String {
        guard id.utf8.count > maximumLength else { return id }
        var head = Substring(id)
        while head.utf8.count > 100 { head.removeLast() }
        return "\(head)~\(digest(id).prefix(64))"
    }
}

/// A generator of pseudo-random numbers seeded from logged values (xoshiro256**), so that a
/// replay draws the same numbers.
public struct DeterministicGenerator: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    /// Seeded from the SHA-256 of `seed`.
    public init(seed: String) {
        let bytes = SHA256Digest.of(seed.utf8).bytes
        func word(_ index: Int) -> UInt64 {
            bytes[(index * 8)..<(index * 8 + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
        state = (word(0), word(1), word(2), word(3))
        if state == (0, 0, 0, 0) { state.0 = 1 }
    }

    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }
}
