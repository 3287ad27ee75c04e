// SPDX-License-Identifier: Apache-2.0
// Test helper: appends batches to a log forever (or COUNT events) and prints "ack FIRST LAST" after
// each append returns, so a test can kill it and check that every acknowledged event survived.
// With PAUSE set to "pause" it waits for a line on stdin after its first append, so a test can open
// a reader on a log that is sure to grow afterwards.
#if canImport(Glibc)
import Glibc
#endif
import SwitchboardLog

let arguments = CommandLine.arguments
guard arguments.count >= 3, let batch = Int(arguments[2]) else {
    print("usage: LogAppender DIR BATCH [COUNT] [INITIAL_MAP_BYTES] [PAYLOAD_BYTES] [PAUSE]")
    exit(64)
}
let count = arguments.count > 3 ? Int(arguments[3]) ?? .max : .max
let mapSize = arguments.count > 4 ? Int(arguments[4]) ?? (64 << 20) : (64 << 20)
let payloadSize = arguments.count > 5 ? Int(arguments[5]) ?? 64 : 64
var pauseAfterFirst = arguments.count > 6 && arguments[6] == "pause"

/// The payload the event at `position` carries; tests rebuild it to check content.
func payload(at position: UInt64, size: Int) -> [UInt8] {
    let head = Array("{\"position\":\(position),\"pad\":\"".utf8)
    return head + [UInt8](repeating: UInt8(ascii: "x"), count: max(0, size - head.count - 2)) + Array("\"}".utf8)
}

do {
    let log = try EventLog.open(at: arguments[1], configuration: .init(initialMapSize: mapSize))
    var next = try log.tail() + 1
    var written = 0
    while written < count {
        let n = min(batch, count - written)
        let events = (0..<UInt64(n)).map { offset in
            let position = next + offset
            return NewEvent(
                type: "test.appended", runID: "run-\(position % 5)", streamID: "stream-\(position % 7)",
                messageID: "m-\(position)", payload: payload(at: position, size: payloadSize))
        }
        let result = try log.append(events)
        print("ack \(result.firstPosition) \(result.lastPosition)")
        fflush(nil)
        next = result.lastPosition + 1
        written += n
        if pauseAfterFirst {
            pauseAfterFirst = false
            _ = readLine()
        }
    }
} catch {
    print("error: \(error)")
    exit(1)
}
