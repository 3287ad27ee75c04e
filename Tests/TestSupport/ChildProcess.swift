// SPDX-License-Identifier: Apache-2.0
public import Foundation
import Synchronization

/// A child process whose output is collected as it arrives. Stopped with SIGKILL: children of a
/// Swift Testing process inherit a signal mask that blocks SIGTERM.
public final class ChildProcess: Sendable {
    private let process: Process
    private let output = TextBuffer()
    private let errors = TextBuffer()

    public init(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        self.process = process
        out.fileHandleForReading.readabilityHandler = { [output] handle in
            let data = handle.availableData
            output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        err.fileHandleForReading.readabilityHandler = { [errors] handle in
            let data = handle.availableData
            errors.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var standardOutput: String { output.text.withLock { $0 } }
    public var standardError: String { errors.text.withLock { $0 } }
    /// Output lines; while the process runs, only finished ones (a line may arrive in pieces).
    public var lines: [String] {
        var parts = standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        if process.isRunning { parts.removeLast() }
        return parts.filter { !$0.isEmpty }.map(String.init)
    }

    /// Waits until the output holds a line for which `predicate` is true; returns it.
    @discardableResult
    public func waitForLine(timeout: Double = 20, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = lines.first(where: predicate) { return line }
            if !process.isRunning {
                return lines.first(where: predicate)
            }
            usleep(10_000)
        }
        return nil
    }

    /// Waits for the process to exit by itself; false on timeout.
    public func waitForExit(timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { return false }
        process.waitUntilExit()
        usleep(50_000)  // let the readability handlers drain the pipes
        return true
    }

    public var exitStatus: Int32 { process.terminationStatus }

    public func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}

private final class TextBuffer: Sendable {
    let text = Mutex<String>("")
}

/// The repository's root directory (this file is Tests/TestSupport/ChildProcess.swift).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The Python with pyzmq that scripts/python-env.sh prepares (created on first use).
public let pythonWithZeroMQ: Result<URL, any Error> = Result {
    let result = try runScript(repositoryRoot.appendingPathComponent("scripts/python-env.sh").path)
    guard result.status == 0, let path = result.output.split(separator: "\n").last else {
        throw POSIXError(.ENOENT)
    }
    return URL(fileURLWithPath: String(path))
}

private func runScript(_ path: String) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [path]
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self), error: "")
}

/// The interop peer script.
public let mdpPeerScript = repositoryRoot.appendingPathComponent("Tests/IntegrationTests/Python/mdp_peer.py").path
