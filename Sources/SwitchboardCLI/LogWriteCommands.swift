// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import SwitchboardLog

struct LogAppend: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append one event (for operators and scripts; agents go through the router).",
        discussion: "Fails when another process (a router) has the log open for writing.")
    @OptionGroup var options: DataOption
    @Option(help: "Stable event type name, e.g. run.started.") var type: String
    @Option(name: .customLong("run"), help: "Run id.") var runID: String = ""
    @Option(help: "Stream id.") var stream: String = ""
    @Option(help: "Message id.") var message: String = ""
    @Option(help: "Causation id.") var causation: String = ""
    @Option(help: "JSON payload.") var payload: String = "{}"
    @Option(help: "Fail unless the stream has exactly this many events.") var expectedVersion: UInt64?
    @Option(help: "fsync, buffered or none.") var durability: String = "fsync"

    func run() throws {
        guard let durability = Durability(rawValue: durability) else {
            throw ValidationError("--durability must be fsync, buffered or none")
        }
        guard (try? JSONSerialization.jsonObject(with: Data(payload.utf8), options: .fragmentsAllowed)) != nil else {
            throw ValidationError("--payload is not valid JSON")
        }
        let result = try reportingErrors {
            let log = try EventLog.open(at: options.data, configuration: .init(durability: durability))
            return try log.append(NewEvent(
                type: type, runID: runID, streamID: stream, messageID: message, causationID: causation,
                payload: Array(payload.utf8), payloadEncoding: .json,
                expectedVersion: expectedVersion.map { .exact($0) } ?? .any))
        }
        print("appended at position \(result.lastPosition)")
    }
}

struct LogRebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild", abstract: "Discard a projection's state and rebuild it from the whole log.")
    @OptionGroup var options: DataOption
    @Option(help: "The projection to rebuild.") var projection: String = "run-status"

    func run() throws {
        let checkpoint = try reportingErrors {
            let log = try EventLog.open(at: options.data)
            try log.rebuildProjection(named: projection)
            return try log.projectionState(named: projection).checkpoint
        }
        print("rebuilt \(projection) up to position \(checkpoint)")
    }
}
