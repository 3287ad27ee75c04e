// SPDX-License-Identifier: Apache-2.0
import Logging
import Synchronization
import SwitchboardLog

/// Re-executes a run's messages as they are read. Each agent instance takes its messages in the
/// run's order on a lane of its own, and lanes run side by side: a replayed ask is answered from
/// the log, never by the instance asked, so no instance waits for another.
///
/// What is reported does not depend on how the lanes interleave: the divergence at the lowest
/// position wins (the lower message index on a tie), a failure ranks at its message's position,
/// and the messages re-executed up to the one that diverged are counted.
enum Reexecution {
    /// Re-executes run `runID`; stops dispatching at a message to a drifted agent unless
    /// `allowDrift`, and at a message recorded after the earliest divergence found.
    static func run(runID: String, feed: HistoryFeed, log: EventLog, registry: [String: AgentType],
                    allowDrift: Bool) async throws -> ReplayReport {
        let limit = Limit()
        let logger = Logger(label: "switchboard.replay", factory: { _ in SwiftLogNoOpLogHandler() })
        let found = await withTaskGroup(of: Found.self) { group in
            var lanes: [AgentID: AsyncStream<[Job]>.Continuation] = [:]
            var found = Found()
            var index = 0
            var stopped = false
            // Services found drifted, by the count of lock entries read when they were checked.
            var checked: (entries: Int, drifted: Set<String>) = (-1, [])
            while !stopped {
                let ready: (requests: [RunHistory.Request], lock: [LockEntry])
                do {
                    ready = try await next(after: index, in: feed)
                } catch {
                    // The log could not be read: nothing found can outrank that.
                    found.fail(at: index, position: 0, error)
                    limit.lower(to: 0)
                    break
                }
                if ready.requests.isEmpty { break }
                if !allowDrift && checked.entries != ready.lock.count {
                    checked = (ready.lock.count, Set(Replayer.drift(of: ready.lock, registry: registry).map(\.service)))
                }
                // Handed to each lane in one piece: a lane woken per message costs more than its replay.
                var jobs: [AgentID: [Job]] = [:]
                // Runs of messages to one instance are common: gathered without a lookup each.
                var streak: (id: AgentID, jobs: [Job])?
                for slot in ready.requests.indices {
                    let current = index
                    index += 1
                    let taken = RunHistory.Taken(batch: ready.requests, slot: slot)
                    let service = taken.request.service
                    // A fork's requests answered from its parent's log were handled in the parent run.
                    guard !taken.request.forked, registry.index(forKey: service) != nil else { continue }
                    // Messages are read in the run's order: none after this one can diverge earlier.
                    let position = taken.request.position
                    if !allowDrift && checked.drifted.contains(service) || !limit.admits(position) {
                        stopped = true
                        break
                    }
                    let id = AgentID(type: service, key: taken.request.received.key)
                    if streak?.id != id {
                        if let (id, batch) = streak.take() { jobs[id, default: []] += batch }
                        if lanes[id] == nil, let type = registry[service] {
                            let (stream, lane) = AsyncStream.makeStream(of: [Job].self)
                            lanes[id] = lane
                            group.addTask {
                                let instance = type.make(id)
                                return await run(lane: stream, of: instance, feed: feed, log: log, limit: limit,
                                                 logger: logger, on: instance.actor)
                            }
                        }
                        streak = (id, [])
                    }
                    streak?.jobs.append(Job(index: current, message: taken))
                }
                if let (id, batch) = streak.take() { jobs[id, default: []] += batch }
                for (id, batch) in jobs { lanes[id]?.yield(batch) }
            }
            for lane in lanes.values { lane.finish() }
            for await lane in group { found.merge(lane) }
            return found
        }
        return try found.report(runID: runID)
    }

    /// One message handed to a lane.
    private struct Job: Sendable {
        var index: Int
        var message: RunHistory.Taken
    }

    /// The messages after the first `index`, up to 64, each with its service's lock entry (recorded
    /// when the router dispatches it) or its outcome read too, or whatever the log holds once the
    /// whole run is read (a cut-short run); taken in batches, each a lock round less. The lock as
    /// read with them holds their entries.
    private static func next(after index: Int, in feed: HistoryFeed) async throws
        -> (requests: [RunHistory.Request], lock: [LockEntry])
    {
        try await feed.read(until: { isReady(index, in: $0) }) { history, finished in
            let end = min(index + 64, history.requests.count)
            let batch = (index..<max(index, end)).prefix { finished || isReady($0, in: history) }.map { history.requests[$0] }
            return (batch, history.lock)
        }
    }

    /// Whether request `index` has been read with its service's lock entry or its outcome.
    private static func isReady(_ index: Int, in history: borrowing RunHistory) -> Bool {
        guard index < history.requests.count else { return false }
        let request = history.requests[index]
        return request.outcome != nil || history.lock.contains { $0.service == request.service }
    }

    /// Runs one instance's messages in order, its state first restored from what it emitted
    /// before this run (instances keyed across runs). The lane runs on the instance's actor: a hop
    /// onto it and back for each message costs more than replaying a short handler.
    private static func run(lane batches: AsyncStream<[Job]>, of instance: any AgentInstance, feed: HistoryFeed,
                            log: EventLog, limit: Limit, logger: Logger, on actor: isolated any Actor) async -> Found {
        var found = Found()
        var restored = false
        var current = (index: 0, position: UInt64(0))
        do {
            lane: for await batch in batches {
                for job in batch {
                    let position = job.message.request.position
                    current = (job.index, position)
                    guard limit.admits(position) else { break lane }
                    if !restored {
                        let earlier = try Replayer.events(of: instance.id, before: position, in: log)
                        if !earlier.isEmpty { try await instance.restore(snapshot: nil, events: earlier) }
                        restored = true
                    }
                    let message = job.message.request.message
                    let received = job.message.request.timestamp
                    // A message already replied to is recorded whole: the session needs no second look.
                    var replied: RunHistory.Taken?
                    if case .reply? = job.message.request.outcome { replied = job.message }
                    let session = ReplaySession(feed: feed, agent: instance.id, message: job.index, replied: replied)
                    let outcome = await instance.handle(
                        message, now: message.handlerTime(received: received), session: session, logger: logger)
                    let result = try await session.finish(outcome: outcome)
                    found.record(job.index, result)
                    if let divergence = result.divergence {
                        // The instance's state is no longer the recorded one; its later messages
                        // were handled after this one, so cannot diverge before it.
                        limit.lower(to: divergence.position)
                        break lane
                    }
                }
            }
        } catch {
            found.fail(at: current.index, position: current.position, error)
            limit.lower(to: current.position)
        }
        return found
    }

    /// The position no message at or after can diverge before: the lowest divergence or failed
    /// message found so far (a divergence lies after the position of the message that made it).
    private final class Limit: Sendable {
        private let position = Atomic<UInt64>(.max)

        func admits(_ message: UInt64) -> Bool {
            message < position.load(ordering: .relaxed)
        }

        func lower(to new: UInt64) {
            var current = position.load(ordering: .relaxed)
            while new < current {
                let (exchanged, original) = position.compareExchange(expected: current, desired: new, ordering: .relaxed)
                if exchanged { return }
                current = original
            }
        }
    }

    /// What lanes found, by message index.
    private struct Found: Sendable {
        var results: [(index: Int, result: ReplaySession.Result)] = []
        /// The failure that comes first: by its message's position, then index, as divergences rank.
        var failure: (position: UInt64, index: Int, error: any Error)?

        mutating func record(_ index: Int, _ result: ReplaySession.Result) {
            results.append((index, result))
        }

        mutating func fail(at index: Int, position: UInt64, _ error: any Error) {
            if let failure, (failure.position, failure.index) <= (position, index) { return }
            failure = (position, index, error)
        }

        mutating func merge(_ other: Found) {
            results += other.results
            if let failure = other.failure { fail(at: failure.index, position: failure.position, failure.error) }
        }

        /// The report of the messages up to the one whose divergence has the lowest position (the
        /// lower index on a tie), or of all.
        /// - Throws: the failure, when it comes before every divergence: a failure ranks at its
        ///   message's position, where ``Limit`` stopped starting messages.
        func report(runID: String) throws -> ReplayReport {
            let first = results.lazy.compactMap { entry in entry.result.divergence.map { ($0.position, entry.index) } }
                .min { $0 < $1 }
            if let failure, first.map({ (failure.position, failure.index) < $0 }) ?? true { throw failure.error }
            let last = first?.1 ?? Int.max
            var report = ReplayReport(nothingFor: runID)
            for (index, result) in results where index <= last {
                report.messagesReplayed += 1
                report.stepsChecked += result.checked
                if result.unfinished { report.unfinishedMessages += 1 }
                if index == last { report.divergence = result.divergence }
            }
            return report
        }
    }
}
