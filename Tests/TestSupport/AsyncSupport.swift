// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A fresh directory under the system temp dir, removed when the test's async closure returns.
public func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
    var template = Array((NSTemporaryDirectory() + "/switchboard-test-XXXXXX").utf8CString)
    guard let pointer = mkdtemp(&template) else { throw POSIXError(.EIO) }
    let path = String(cString: pointer)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Runs blocking work (a synchronous socket client) on a thread of its own, off Swift's cooperative pool.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}
