// SPDX-License-Identifier: Apache-2.0
import Foundation
import Switchboard
import SwitchboardWire
import Testing

@Suite struct RunClientTests {
    /// No router answers: the wait ends at its timeout. It counted only its 20 ms pauses between
    /// asks before, not the 5 s it waited for each answer: a 60 s timeout would have lasted hours.
    @Test func waitingForAServiceNobodyAnswersEndsAtTheTimeout() throws {
        let client = try RunClient(context: try ZMQContext(),
                                   endpoint: "inproc://no-router-\(UInt64.random(in: 0...UInt64.max))")
        let started = Date()
        #expect(try client.waitForService("echo", timeout: 300) == false)
        // Loose, for a loaded machine: counting pauses only, it would wait for 15 answers of 5 s.
        #expect(Date().timeIntervalSince(started) < 30)
    }
}
