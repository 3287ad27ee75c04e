// SPDX-License-Identifier: Apache-2.0
public import Foundation
import Synchronization

/// A child process whose output is collected as it arrives. Stopped with SIGKILL: children of a
/// Swift Testing process inherit a signal mask that blocks SIGTERM.
public final class ChildProcess: Sendable {
    private let process: Process
    private let output: PipeReader
    private let errors: PipeReader

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
        try process.run()
        output = PipeReader(out.fileHandleForReading)
        errors = PipeReader(err.fileHandleForReading)
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var standardOutput: String { output.text }
    public var standardError: String { errors.text }
    /// Output lines; until the output ends, only finished ones (a line may arrive in pieces).
    public var lines: [String] {
        let ended = output.ended
        var parts = standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        if !ended { parts.removeLast() }
        return parts.filter { !$0.isEmpty }.map(String.init)
    }

    /// Waits until the output holds a line for which `predicate` is true; returns it.
    @discardableResult
    public func waitForLine(timeout: Double = 20, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = lines.first(where: predicate) { return line }
            if !process.isRunning {
                drain(until: deadline)
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
        drain(until: deadline)
        return true
    }

    /// `waitForLine` for async tests: polls with `Task.sleep`, so the wait holds none of the
    /// two cooperative threads other tests' tasks run on.
    @discardableResult
    public func waitForLine(timeout: Double = 20, _ predicate: (String) -> Bool) async -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = lines.first(where: predicate) { return line }
            if !process.isRunning {
                await drain(until: deadline)
                return lines.first(where: predicate)
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// `waitForExit` for async tests, holding no cooperative thread while it waits.
    public func waitForExit(timeout: Double = 30) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning { return false }
        process.waitUntilExit()
        await drain(until: deadline)
        return true
    }

    public var exitStatus: Int32 { process.terminationStatus }

    public func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Waits for both pipes to reach their end (a grandchild may still hold them open).
    private func drain(until deadline: Date) {
        while !(output.ended && errors.ended) && Date() < deadline { usleep(5_000) }
    }

    private func drain(until deadline: Date) async {
        while !(output.ended && errors.ended) && Date() < deadline { try? await Task.sleep(for: .milliseconds(5)) }
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}

/// Reads a pipe to its end on a thread of its own with blocking reads. Foundation's
/// `readabilityHandler` is not used: on Linux its dispatch source teardown races the close of the
/// descriptor and can crash libdispatch's event loop (swift-corelibs-libdispatch issue 949).
final class PipeReader: Sendable {
    private let state = Mutex<(bytes: [UInt8], ended: Bool)>(([], false))

    init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            let descriptor = handle.fileDescriptor
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                state.withLock { $0.bytes += buffer[..<count] }
            }
            try? handle.close()
            state.withLock { $0.ended = true }
        }
        thread.start()
    }

    var text: String { state.withLock { String(decoding: $0.bytes, as: UTF8.self) } }
    var ended: Bool { state.withLock { $0.ended } }

    /// Everything the pipe carried, once it has ended.
    func wait() -> [UInt8] {
        while true {
            let done: [UInt8]? = state.withLock { $0.ended ? $0.bytes : nil }
            if let done { return done }
            usleep(2_000)
        }
    }
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
