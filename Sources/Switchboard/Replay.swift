// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization
public import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire

/// The first place where a re-execution did not do what the log records.
public struct ReplayDivergence: Error, Sendable, Hashable, CustomStringConvertible {
    /// The log position of the recorded step that differs (the run's last position when the log has none).
    public var position: UInt64
    /// The agent instance that diverged.
    public var agent: String
    public var expected: String
    public var actual: String

    public var description: String {
        "divergence at position \(position) in \(agent): expected \(expected), got \(actual)"
    }
}

/// A service whose recorded version or config digest differs from the one registered now.
public struct LockDrift: Sendable, Hashable, CustomStringConvertible {
    public var service: String
    public var recordedVersion: String
    public var recordedDigest: String
    public var currentVersion: String
    public var currentDigest: String

    public var description: String {
        "\(service): recorded version \(recordedVersion) (config \(recordedDigest.isEmpty ? "-" : recordedDigest)), "
            + "now \(currentVersion) (config \(currentDigest.isEmpty ? "-" : currentDigest))"
    }
}

/// One entry of a run's determinism lock.
public struct LockEntry: Sendable, Hashable {
    public var service: String
    public var version: String
    public var configDigest: String
    /// Where it was recorded.
    public var position: UInt64

    /// The entry a `lock.recorded` event holds; nil for any other event.
    init?(recorded event: RecordedEvent) {
        guard event.type == "lock.recorded", let json = FlatJSON(event.payload) else { return nil }
        self.init(json, position: event.position)
    }

    /// The entry a `lock.recorded` payload holds; nil without a service.
    init?(_ json: FlatJSON, position: UInt64) {
        guard let service = json.strings["service"] else { return nil }
        self.init(service: service, version: json.strings["version"] ?? "",
                  configDigest: json.strings["configDigest"] ?? "", position: position)
    }

    init(service: String, version: String, configDigest: String, position: UInt64) {
        self.service = service
        self.version = version
        self.configDigest = configDigest
        self.position = position
    }
}

/// What a replay found.
public struct ReplayReport: Sendable {
    public var runID: String
    /// Events of the run read from the log.
    public var eventsRead: Int
    /// Recorded steps compared with the re-execution: agent messages, asks, emitted events, replies.
    public var stepsChecked: Int
    /// Agent messages re-executed.
    public var messagesReplayed: Int
    /// Wall time of the replay, in seconds.
    public var seconds: Double
    public var lock: [LockEntry]
    /// Locked services whose registered version or config differs; the replay did not run unless allowed.
    public var drift: [LockDrift]
    public var divergence: ReplayDivergence?
    /// Messages whose recorded handling ends without a reply (the run was cut short): replayed as far as recorded.
    public var unfinishedMessages: Int

    /// 0 identical, 1 divergent, 2 refused because of drift.
    public var exitCode: Int32 {
        if divergence != nil { return 1 }
        if !drift.isEmpty && messagesReplayed == 0 && stepsChecked == 0 { return 2 }
        return 0
    }
}

extension ReplayReport {
    /// A report of a replay that has checked nothing yet.
    init(nothingFor runID: String) {
        self.init(runID: runID, eventsRead: 0, stepsChecked: 0, messagesReplayed: 0, seconds: 0, lock: [], drift: [],
                  divergence: nil, unfinishedMessages: 0)
    }
}

/// Re-executes a run's agents against the log: every ask is answered from its recorded reply,
/// and every ask, emitted event and reply is compared with the recorded one. Needs no router and
/// no network: the log is opened read-only.
public enum Replayer {
    public static func lock(of runID: String, in log: EventLog) throws -> [LockEntry] {
        lock(in: try log.events(inRun: runID))
    }

    /// The lock entries among a run's events, for callers that read them already.
    public static func lock(in events: [RecordedEvent]) -> [LockEntry] {
        events.compactMap(LockEntry.init(recorded:))
    }

    /// The payloads of the events `id` emitted before `position` (snapshots aside), read in pages:
    /// a long-lived instance's stream can run far past the run being replayed.
    static func events(of id: AgentID, before position: UInt64, in log: EventLog) throws -> [[UInt8]] {
        var payloads: [[UInt8]] = []
        var version: UInt64 = 1
        let page = 256
        while true {
            let events = try log.events(inStream: id.streamID, fromVersion: version, limit: page)
            for event in events {
                guard event.position < position else { return payloads }
                if event.type != StateService.snapshotType { payloads.append(event.payload) }
                version = event.streamVersion + 1
            }
            if events.count < page { return payloads }
        }
    }

    /// Replays `runID` with the agent types given. The run is read while it is re-executed; an
    /// agent whose lock entry drifted is not run.
    /// - Parameter allowDrift: replay even when a locked agent's version or config differs.
    /// - Throws: ``EventLogError`` with code `notFound` when the log has no such run.
    public static func replay(run runID: String, log: EventLog, types: [AgentType], allowDrift: Bool = false) async throws
        -> ReplayReport
    {
        let started = DispatchTime.now().uptimeNanoseconds
        let feed = HistoryFeed(runID: runID, log: log)
        let registry = Dictionary(types.map { ($0.descriptor.name, $0) }, uniquingKeysWith: { first, _ in first })
        var report: ReplayReport
        do {
            report = try await Reexecution.run(runID: runID, feed: feed, log: log, registry: registry,
                                               allowDrift: allowDrift)
        } catch {
            // A refusal for drift outranks an error of the agents run before the drift was found.
            guard !allowDrift, let summary = try? await feed.summary(), !drift(of: summary.lock, registry: registry).isEmpty
            else {
                await feed.stop()
                feed.discard()
                throw error
            }
            report = ReplayReport(nothingFor: runID)
        }
        let summary = try await feed.summary()
        feed.discard()
        guard summary.eventsRead > 0 else { throw EventLogError(.notFound, "the log has no run \(runID)") }
        report.eventsRead = summary.eventsRead
        report.lock = summary.lock
        report.drift = drift(of: summary.lock, registry: registry)
        if !report.drift.isEmpty && !allowDrift {
            // Refused: what ran before the drift was found does not count.
            report.stepsChecked = 0
            report.messagesReplayed = 0
            report.unfinishedMessages = 0
            report.divergence = nil
        }
        report.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return report
    }

    /// The locked services whose registered version or config digest differs, each drift once.
    static func drift(of lock: [LockEntry], registry: [String: AgentType]) -> [LockDrift] {
        var drift: [LockDrift] = []
        var seen: Set<String> = []
        for entry in lock {
            guard let current = registry[entry.service]?.descriptor else { continue }
            if current.version != entry.version || current.configDigest != entry.configDigest,
               seen.insert(entry.service + "\u{0}" + entry.version + "\u{0}" + entry.configDigest).inserted {
                drift.append(LockDrift(service: entry.service, recordedVersion: entry.version,
                                       recordedDigest: entry.configDigest, currentVersion: current.version,
                                       currentDigest: current.configDigest))
            }
        }
        return drift
    }
}

/// Answers a handler's asks from the log and checks what it does against the record.
final class ReplaySession: AgentSession, Sendable {
    private struct Progress {
        var asks = 0
        /// Emitted events not yet compared.
        var emitted: [EmittedEvent] = []
        /// Emitted events compared so far.
        var eventsChecked = 0
        var divergence: ReplayDivergence?
        var unfinished = false
        var checked = 0
        var readAhead = ReadAhead()
    }

    /// The message's recorded asks read ahead with their outcomes, from the `first`-th on, and its
    /// emitted events before the last of them from the `eventsFrom`-th on: most asks are answered
    /// from here without taking the feed's lock, which the reading thread holds as it applies.
    private struct ReadAhead {
        var first = 1
        var asks: [RunHistory.Request] = []
        var eventsFrom = 0
        var events: [RunHistory.Emitted] = []

        /// The recorded `sequence`-th ask when read ahead as `ask`, with the emitted events from the
        /// `offset`-th on, up to `pending` of them, that the log holds before it.
        func answer(_ ask: OutgoingAsk, sequence: Int, offset: Int, pending: Int)
            -> (RunHistory.Taken, ArraySlice<RunHistory.Emitted>)?
        {
            let slot = sequence - first
            guard slot >= 0, slot < asks.count, offset >= eventsFrom,
                  asks[slot].message.messageID == ask.messageID else { return nil }
            let before = asks[slot].position
            let events = events.dropFirst(offset - eventsFrom).prefix(pending)
            return (RunHistory.Taken(batch: asks, slot: slot), events.prefix { $0.position < before })
        }
    }

    private let feed: HistoryFeed
    private let agentID: AgentID
    /// The index of the recorded message being handled.
    private let message: Int
    /// The recorded message when its reply had been read before it was re-executed.
    private let replied: RunHistory.Taken?
    private let progress = Mutex(Progress())

    init(feed: HistoryFeed, agent: AgentID, message: Int, replied: RunHistory.Taken?) {
        self.feed = feed
        self.agentID = agent
        self.message = message
        self.replied = replied
    }

    private var agent: String { agentID.description }

    var namesEvents: Bool { false }

    struct Result: Sendable {
        var divergence: ReplayDivergence?
        var unfinished: Bool
        var checked: Int
    }

    /// Thrown to stop a handler whose recorded history ends here (the run was cut short).
    struct EndOfRecord: Error {}

    nonisolated(nonsending) func ask(_ ask: OutgoingAsk, onPartial: (@Sendable (Payload) -> Void)?) async throws
        -> AskReply {
        let (sequence, offset, pending, readAhead) = progress.withLock { progress in
            progress.asks += 1
            Self.append(handlerEventsOf: ask.events, to: &progress.emitted)
            let answer = progress.readAhead.answer(ask, sequence: progress.asks, offset: progress.eventsChecked,
                                                   pending: progress.emitted.count)
            return (progress.asks, progress.eventsChecked, progress.emitted.count, answer)
        }
        let found: RunHistory.Taken?
        let recordedEvents: ArraySlice<RunHistory.Emitted>
        var asked = 0
        var parentOutcome: RunHistory.Outcome?
        if let readAhead {
            (found, recordedEvents) = readAhead
        } else {
            // Waits for the recorded ask and its outcome, or for the handled message's outcome: every
            // ask it made is read by then.
            let message = self.message
            let ahead: ReadAhead
            (found, asked, parentOutcome, recordedEvents, ahead) = try await feed.read(until: { history in
                if history.requests[message].outcome != nil { return true }
                guard let index = Self.find(ask, sequence: sequence, of: message, in: history) else { return false }
                return history.requests[index].outcome != nil
            }) { history, _ in
                let found = Self.find(ask, sequence: sequence, of: message, in: history).map {
                    RunHistory.Taken(batch: [history.requests[$0]], slot: 0)
                }
                // The router logs the events an ask carries just before the ask itself.
                let before = found?.request.position ?? 0
                let recorded = history.requests[message]
                // Copied: a slice would share the history's array, which the reading thread would then
                // copy whole to append to it.
                let pendingEvents = recorded.emitted.dropFirst(offset).prefix(pending)
                let events = Array(pendingEvents.prefix { $0.position < before })[...]
                return (found, recorded.asks.count, recorded.outcome, events,
                        Self.readAhead(after: sequence, of: message, from: offset, in: history))
            }
            progress.withLock { $0.readAhead = ahead }
        }
        // The events emitted before this ask that the log holds before it: a divergence there comes first.
        try progress.withLock { progress in
            let start = progress.eventsChecked
            let end = min(offset + recordedEvents.count, start + progress.emitted.count)
            guard start < end else { return }
            if let divergence = compare(progress.emitted[..<(end - start)], from: start,
                                        with: recordedEvents.dropFirst(start - offset)) {
                if progress.divergence == nil { progress.divergence = divergence }
                throw divergence
            }
            // All compared is the common case: the events may be the ask's own, shared, not to be copied.
            if end - start == progress.emitted.count {
                progress.emitted = []
            } else {
                progress.emitted.removeFirst(end - start)
            }
            progress.eventsChecked = end
            progress.checked += end - start
        }
        guard let found else {
            if case .reply(let position, _)? = parentOutcome {
                throw fail(position, "\(asked) asks, then the reply", "ask #\(sequence) to \(ask.service)")
            }
            if case .failed(let position, _, _)? = parentOutcome {
                throw fail(position, "\(asked) asks, then a failure", "ask #\(sequence) to \(ask.service)")
            }
            progress.withLock { $0.unfinished = true }
            throw EndOfRecord()
        }
        return try answer(ask, sequence: sequence, with: found, onPartial: onPartial)
    }

    /// Checks `ask`, the handler's `sequence`-th, against `recorded` and answers it as the log does.
    /// The record is read in place in its batch (``RunHistory/Taken/request``): a copy of it would
    /// retain and release all it holds.
    private func answer(_ ask: OutgoingAsk, sequence: Int, with taken: RunHistory.Taken,
                        onPartial: (@Sendable (Payload) -> Void)?) throws -> AskReply {
        // The payloads' digests are what the report shows; equal bytes are equal digests.
        guard taken.request.service == ask.service, Self.sameBytes(taken.request.message.frames, ask.frames) else {
            let recordedHash = SHA256Digest.of(taken.request.message.frames.joined())
            let actualHash = SHA256Digest.of(ask.frames.joined())
            throw fail(taken.request.position,
                       "ask #\(sequence) to \(taken.request.service) with payload "
                           + "\(Self.show(taken.request.message.frames)) "
                           + "(sha256 \(recordedHash.description.prefix(16)))",
                       "ask #\(sequence) to \(ask.service) with payload \(Self.show(ask.frames)) "
                           + "(sha256 \(actualHash.description.prefix(16)))")
        }
        progress.withLock { $0.checked += 1 }
        for partial in taken.request.partials { onPartial?(Payload(bytes: partial)) }
        switch taken.request.outcome {
        case .reply(_, let frames)?:
            progress.withLock { $0.checked += 1 }
            if taken.request.errorReply,
               let error = AskError(service: ask.service, status: "error", frames: frames) {
                throw error
            }
            return AskReply(payload: Payload(bytes: frames.first ?? []), frames: frames,
                            partials: taken.request.partials.map(Payload.init(bytes:)))
        case .failed(_, let code, let message)?:
            progress.withLock { $0.checked += 1 }
            throw AskError(service: ask.service, code: code, message: message)
        case nil:
            progress.withLock { $0.unfinished = true }
            throw EndOfRecord()
        }
    }

    /// The recorded asks of message `message` after the `sequence`-th whose outcomes are read, up to
    /// 256, with its emitted events from the `offset`-th on before the last of them.
    private static func readAhead(after sequence: Int, of message: Int, from offset: Int,
                                  in history: borrowing RunHistory) -> ReadAhead {
        var ahead = ReadAhead(first: sequence + 1, eventsFrom: offset)
        let recorded = history.requests[message]
        var next = sequence
        while next < recorded.asks.count, ahead.asks.count < 256, history.requests[recorded.asks[next]].outcome != nil {
            ahead.asks.append(history.requests[recorded.asks[next]])
            next += 1
        }
        if let last = ahead.asks.last {
            ahead.events = Array(recorded.emitted.dropFirst(offset).prefix { $0.position < last.position })
        }
        return ahead
    }

    /// The recorded request for `ask`, the `sequence`-th of message `message`: the recorded asks
    /// in order first, a lookup by id only when the order differs (``AgentContext/askAll(_:)``).
    private static func find(_ ask: OutgoingAsk, sequence: Int, of message: Int, in history: borrowing RunHistory)
        -> Int?
    {
        let asks = history.requests[message].asks
        if sequence <= asks.count, history.requests[asks[sequence - 1]].message.messageID == ask.messageID {
            return asks[sequence - 1]
        }
        return history.request(id: ask.messageID)
    }

    private func fail(_ position: UInt64, _ expected: String, _ actual: String) -> ReplayDivergence {
        let divergence = ReplayDivergence(position: position, agent: agent, expected: expected, actual: actual)
        progress.withLock { if $0.divergence == nil { $0.divergence = divergence } }
        return divergence
    }

    /// Compares the handler's events and reply with the record, once it returned and the message's
    /// outcome (or the whole run) is read.
    nonisolated(nonsending) func finish(outcome: HandlerOutcome) async throws -> Result {
        // Moved out, not copied: nothing reads the progress after the handler returned.
        let state = progress.withLock { progress in
            Self.append(handlerEventsOf: outcome.events, to: &progress.emitted)
            var taken = Progress()
            swap(&taken, &progress)
            return taken
        }
        let result = Result(divergence: state.divergence ?? outcome.divergence, unfinished: state.unfinished,
                            checked: state.checked)
        if result.divergence != nil || state.unfinished { return result }
        if let replied, replied.request.asks.count <= state.asks {
            // The reply's position ends the record.
            return conclude(result, state: state, outcome: outcome, recorded: replied, lastPosition: 0, missing: nil)
        }
        let message = self.message
        // The record, its last position, and the first recorded ask the re-execution did not make.
        let (recorded, lastPosition, missing) = try await feed.read(until: { $0.requests[message].outcome != nil }) {
            history, _ in
            let recorded = history.requests[message]
            let missing = recorded.asks.count > state.asks ? history.requests[recorded.asks[state.asks]] : nil
            return (recorded, history.lastPosition, missing.map { (position: $0.position, service: $0.service) })
        }
        return conclude(result, state: state, outcome: outcome, recorded: RunHistory.Taken(batch: [recorded], slot: 0),
                        lastPosition: lastPosition, missing: missing)
    }

    /// Compares what the handler did after its last ask with `recorded`, the message's record.
    private func conclude(_ result: Result, state: Progress, outcome: HandlerOutcome,
                          recorded taken: RunHistory.Taken, lastPosition: UInt64,
                          missing: (position: UInt64, service: String)?) -> Result {
        var result = result
        // Read in place in its batch, as ``answer(_:sequence:with:onPartial:)`` reads its record.
        let recordedOutcome = taken.request.outcome
        var endPosition = lastPosition
        switch recordedOutcome {
        case .reply(let position, _)?, .failed(let position, _, _)?: endPosition = position
        case nil: break
        }
        // Asks the log holds that the re-execution did not make.
        if let missing {
            result.divergence = ReplayDivergence(
                position: missing.position, agent: agent,
                expected: "ask #\(state.asks + 1) to \(missing.service)", actual: "no further ask")
            return result
        }
        // The emitted events not compared yet, in order.
        let actual = state.emitted
        let offset = state.eventsChecked
        let recordedCount = taken.request.emitted.count
        let compared = min(actual.count, max(0, recordedCount - offset))
        if let divergence = compare(actual[..<compared], from: offset, with: taken.request.emitted[offset...]) {
            result.divergence = divergence
            return result
        }
        result.checked += compared
        guard let recordedOutcome else {
            // The run was cut short: events past the record never reached the log, as the reply or
            // next ask that would have carried them was never logged.
            result.unfinished = true
            return result
        }
        if compared < actual.count {
            let event = actual[compared]
            result.divergence = ReplayDivergence(
                position: endPosition, agent: agent, expected: "\(recordedCount) emitted events",
                actual: "event #\(offset + compared + 1) \(event.type) \(Self.show([event.payload]))")
            return result
        }
        if recordedCount > offset + actual.count {
            let missed = taken.request.emitted[offset + actual.count]
            result.divergence = ReplayDivergence(
                position: missed.position, agent: agent,
                expected: "event #\(offset + actual.count + 1) \(missed.type)", actual: "no further event")
            return result
        }
        // The reply.
        switch (recordedOutcome, outcome.reply) {
        case (.reply(let position, let frames), .success(let actualFrames)):
            if frames != actualFrames {
                result.divergence = ReplayDivergence(position: position, agent: agent,
                                                     expected: "reply \(Self.show(frames))",
                                                     actual: "reply \(Self.show(actualFrames))")
            } else {
                result.checked += 1
            }
        case (.reply(let position, let frames), .failure(let error)):
            if frames != [error.body] {
                result.divergence = ReplayDivergence(position: position, agent: agent,
                                                     expected: "reply \(Self.show(frames))",
                                                     actual: "failure \(error.code): \(error.message)")
            } else {
                result.checked += 1
            }
        case (.failed, _):
            // The router failed it (expired, too large): the handler's outcome never reached the log.
            result.checked += 1
        }
        return result
    }

    /// The first of `actual` that differs from the event `recorded` holds at the same place; both
    /// start at the handler's `first`-th emitted event (0-based).
    private func compare(_ actual: ArraySlice<EmittedEvent>, from first: Int, with recorded: ArraySlice<RunHistory.Emitted>) -> ReplayDivergence? {
        for (offset, (event, recorded)) in zip(actual, recorded).enumerated()
        where recorded.type != event.type || recorded.payload != event.payload {
            let number = first + offset + 1
            return ReplayDivergence(
                position: recorded.position, agent: agent,
                expected: "event #\(number) \(recorded.type) \(Self.show([recorded.payload]))",
                actual: "event #\(number) \(event.type) \(Self.show([event.payload]))")
        }
        return nil
    }

    /// Appends the events the handler emitted: snapshots are the host's bookkeeping, not its output.
    private static func append(handlerEventsOf events: [EmittedEvent], to list: inout [EmittedEvent]) {
        let snapshot = StateService.snapshotType
        // Shared rather than copied one by one when there is nothing to leave out or add to (most asks).
        if list.isEmpty, !events.contains(where: { $0.type == snapshot }) {
            list = events
            return
        }
        for event in events where event.type != snapshot { list.append(event) }
    }

    /// Whether two bodies hold the same bytes, frame boundaries aside.
    static func sameBytes(_ left: [[UInt8]], _ right: [[UInt8]]) -> Bool {
        if left.count == 1, right.count == 1 { return left[0] == right[0] }
        return left.joined().elementsEqual(right.joined())
    }

    /// A payload for a report: text when printable, cut to 200 characters.
    static func show(_ frames: [[UInt8]]) -> String {
        let text = frames.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " | ")
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}
