// SPDX-License-Identifier: Apache-2.0
public import Foundation

public import SwitchboardLog

/// A fresh directory under the system temp dir, removed when the test's closure returns.
public func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    var template = Array((NSTemporaryDirectory() + "/switchboard-test-XXXXXX").utf8CString)
    guard let pointer = mkdtemp(&template) else { throw POSIXError(.EIO) }
    let path = String(cString: pointer)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Where SwiftPM put the built products (the test bundle sits beside them).
public let productsDirectory: URL = {
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var directory = executable.deletingLastPathComponent()
    // On Linux the test runner is `<products>/<package>PackageTests.xctest`.
    while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("switchboard").path),
          directory.path != "/" {
        directory = directory.deletingLastPathComponent()
    }
    return directory
}()

public struct ProcessResult: Sendable {
    public var status: Int32
    public var output: String
    public var error: String
}

/// Runs a built product to completion and captures its output.
/// - Parameter environment: variables set for the child on top of this process's own.
public func runProduct(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws
    -> ProcessResult
{
    let process = Process()
    process.executableURL = productsDirectory.appendingPathComponent(name)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Both pipes read at once, so a child that fills one while the other is read cannot stall.
    let errors = PipeReader(err.fileHandleForReading)
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = errors.wait()
    process.waitUntilExit()
    return ProcessResult(
        status: process.terminationStatus, output: String(decoding: output, as: UTF8.self),
        error: String(decoding: error, as: UTF8.self))
}

/// `runProduct` for async tests: the child is waited for without holding a cooperative thread.
public func runProduct(_ name: String, _ arguments: [String], environment: [String: String] = [:]) async throws
    -> ProcessResult
{
    let child = try ChildProcess(
        productsDirectory.appendingPathComponent(name), arguments,
        environment: environment.isEmpty ? nil : ProcessInfo.processInfo.environment.merging(environment) { _, new in new })
    // A product that runs for ten minutes is hung: its output so far says where.
    guard await child.waitForExit(timeout: 600) else {
        child.kill()
        return ProcessResult(status: -1, output: child.standardOutput, error: "timed out\n" + child.standardError)
    }
    return ProcessResult(status: child.exitStatus, output: child.standardOutput, error: child.standardError)
}

/// The payload LogAppender writes at `position` (mirrors Tests/Helpers/LogAppender).
public func appenderPayload(at position: UInt64, size: Int = 64) -> [UInt8] {
    let head = Array("{\"position\":\(position),\"pad\":\"".utf8)
    return head + [UInt8](repeating: UInt8(ascii: "x"), count: max(0, size - head.count - 2)) + Array("\"}".utf8)
}

/// A JSON event for run `runID`, stream `streamID`.
public func jsonEvent(_ type: String, run runID: String = "run-1", stream streamID: String = "stream-1",
               _ json: String = "{}") -> NewEvent {
    NewEvent(type: type, runID: runID, streamID: streamID, json: json)
}

/// The venv of scripts/python-env.sh: pyzmq, mcp-server-time and the official MCP Python SDK.
public let testVenv = ProcessInfo.processInfo.environment["SWITCHBOARD_VENV"]
    ?? FileManager.default.homeDirectoryForCurrentUser.path + "/.cache/switchboard/venv"

/// The names of the files directly in `directory` whose bytes contain `text`.
public func files(in directory: String, containing text: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { file in
        try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file)).range(of: Data(text.utf8)) != nil
    }
}
