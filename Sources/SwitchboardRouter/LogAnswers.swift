// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwitchboardLog
import SwitchboardWire

/// The log's answers to asks the router's memory no longer holds: a re-issued ask of a run being
/// recovered long after it was answered, and, in a fork, the parent's answers up to the fork
/// position.
///
/// Used on the router's loop thread only. It reads committed events; an answer not committed yet
/// is still in the router's memory, which is asked first.
final class LogAnswers {
    struct Answer {
        var service: String
        /// Of the request's frames after its envelope.
        var bodyDigest: SHA256Digest
        var requestPosition: UInt64
        var answerPosition: UInt64
        var outcome: BrokerStateMachine.RecoveredOutcome
    }

    /// What `run.forked` records: ids of the fork map to the parent's by swapping `root` for `origin`.
    struct ForkLink: Codable {
        var parent: String
        var until: UInt64
        var origin: String
        var root: String

        /// The parent's id for one of this run's message ids; nil for ids outside the tree of the
        /// first message (or shortened to a digest, which cannot be mapped).
        func parentID(of messageID: String) -> String? {
            guard messageID.hasPrefix(root), !messageID.contains("~") else { return nil }
            return origin + messageID.dropFirst(root.count)
        }
    }

    /// A run's first request: what a fork of it sends again.
    struct Root {
        var position: UInt64
        var messageID: String
        var service: String
        var body: [[UInt8]]
        var timestamp: Timestamp
    }

    private struct RunRecord {
        var through: UInt64 = 0
        var requests: [String: (service: String, digest: SHA256Digest, position: UInt64)] = [:]
        var answers: [String: Answer] = [:]
        var fork: ForkLink?
        var root: Root?
    }

    /// Runs whose answers are kept read; the least recently used is dropped first.
    static let runsKept = 64

    private let log: EventLog
    private var runs: [String: RunRecord] = [:]
    private var order: [String] = []
    private let decoder = JSONDecoder()

    init(log: EventLog) {
        self.log = log
    }

    /// The committed answer to `messageID` of `run`, if the log has one.
    func answer(run: String, messageID: String) -> Answer? {
        record(run)?.answers[messageID]
    }

    /// The parent link of a forked run.
    func fork(of run: String) -> ForkLink? {
        record(run)?.fork
    }

    /// The first request of `run`, as committed.
    func root(of run: String) -> Root? {
        record(run)?.root
    }

    /// The log's last position (0 when unreadable).
    func tail() -> UInt64 {
        (try? log.tail()) ?? 0
    }

    static func digest(_ frames: some Collection<[UInt8]>) -> SHA256Digest {
        var bytes: [UInt8] = []
        for frame in frames {
            withUnsafeBytes(of: UInt64(frame.count).bigEndian) { bytes.append(contentsOf: $0) }
            bytes += frame
        }
        return SHA256Digest.of(bytes)
    }

    /// The run's record, brought up to the log's tail.
    private func record(_ run: String) -> RunRecord? {
        guard !run.isEmpty, run.utf8.count <= 255 else { return nil }
        var record = runs.removeValue(forKey: run) ?? RunRecord()
        order.removeAll { $0 == run }
        defer {
            runs[run] = record
            order.append(run)
            if order.count > Self.runsKept { runs[order.removeFirst()] = nil }
        }
        guard let events = try? log.events(inRun: run, from: record.through + 1) else { return record }
        for event in events {
            record.through = event.position
            read(event, into: &record)
        }
        return record
    }

    private func read(_ event: RecordedEvent, into record: inout RunRecord) {
        // Router events have no stream; an agent's emitted event always has one, whatever its type.
        guard event.streamID.isEmpty else { return }
        switch event.type {
        case RouterEvents.runForked:
            record.fork = try? decoder.decode(ForkLink.self, from: Data(event.payload))
        case RouterEvents.requestReceived:
            guard let request = RouterRecovery.request(
                from: event.payload, encoding: event.payloadEncoding, messageID: event.messageID, runID: event.runID,
                causationID: event.causationID, receivedWall: event.timestamp, decoder: decoder)
            else { return }
            let frames = request.native ? Array(request.body.dropFirst()) : request.body
            record.requests[event.messageID] = (request.service, Self.digest(frames), event.position)
            if record.root == nil, event.causationID.isEmpty {
                record.root = Root(position: event.position, messageID: event.messageID, service: request.service,
                                   body: request.body, timestamp: event.timestamp)
            }
        case RouterEvents.replyFinal, RouterEvents.requestFailed:
            guard let request = record.requests[event.causationID],
                  let outcome = RouterRecovery.outcome(of: event.type, payload: event.payload,
                                                            encoding: event.payloadEncoding, decoder: decoder)
            else { return }
            record.answers[event.causationID] = Answer(
                service: request.service, bodyDigest: request.digest, requestPosition: request.position,
                answerPosition: event.position, outcome: outcome)
        default:
            break
        }
    }
}
