// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import SwitchboardLog
import TestSupport

/// Programmer errors trap with a message instead of reading freed memory.
@Suite struct MisuseTests {
    @Test func usingAnEventViewAfterItsScanTraps() async {
        await #expect(processExitsWith: .failure) {
            try withTemporaryDirectory { dir in
                let log = try EventLog.open(at: dir)
                try log.append(NewEvent(type: "t"))
                var kept: EventView?
                try log.scan { view in
                    kept = view
                    return false
                }
                _ = kept?.position
            }
        }
    }
}
