// SPDX-License-Identifier: Apache-2.0
import Synchronization
import SwitchboardLog
import SwitchboardWire

/// A run's history, read from the log on a thread of its own while replay re-executes what has
/// been read so far: the run is indexed and re-executed at once, on two cores. A reader waits
/// until what it needs has been read, or the whole run has.
final class HistoryFeed: Sendable {
    private struct State {
        var history = RunHistory()
        var finished = false
        var error: (any Error)?
        /// Raised with each batch applied, so a reader that found too little misses no batch.
        var generation = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Events read outside the lock before they are applied under it.
    private static let batch = 256
    private let state = Mutex(State())
    private let stopping = Atomic(false)
    /// The log, until the thread takes it: the thread lets go of it before it wakes the last readers,
    /// so a caller that closes the log once replay returns closes it for good.
    private let source: Mutex<EventLog?>

    /// Starts reading run `runID`; the thread ends with the run or at ``stop()``.
    init(runID: String, log: EventLog) {
        source = Mutex(log)
        DetachedThread { [self] in
            var parsed = Batch()
            let end = scan(runID: runID, into: &parsed)
            publish(&parsed, end: end)
        }.start()
    }

    /// Reads the run, publishing full batches; returns what the last batch must report.
    private func scan(runID: String, into parsed: inout Batch) -> End {
        guard let log = source.withLock({ $0.take() }) else { return (0, 0, nil) }
        var last: UInt64 = 0
        var parser = RunHistory.Parser(runID: runID)
        do {
            let count = try log.scan(inRun: runID) { event in
                last = event.position
                if let item = parser.parse(event) { parsed.append(item) }
                if parsed.count >= Self.batch { publish(&parsed) }
                return !stopping.load(ordering: .relaxed)
            }
            return (count, last, nil)
        } catch {
            return (0, last, error)
        }
    }

    private typealias End = (events: Int, last: UInt64, error: (any Error)?)

    private func publish(_ parsed: inout Batch, end: End? = nil) {
        let waiters = state.withLock { state in
            parsed.drain(into: &state.history)
            if let end {
                state.history.finish(eventsRead: end.events, lastPosition: end.last)
                state.error = end.error
                state.finished = true
            }
            state.generation += 1
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Events read and not yet applied, moved into the history rather than copied: every copy the
    /// reading thread let go of would be an atomic release on memory the replaying threads share.
    private struct Batch: ~Copyable {
        private let storage = UnsafeMutablePointer<RunHistory.Parsed>.allocate(capacity: HistoryFeed.batch)
        private(set) var count = 0

        mutating func append(_ event: consuming RunHistory.Parsed) {
            precondition(count < HistoryFeed.batch, "a batch of parsed events overflowed")
            (storage + count).initialize(to: event)
            count += 1
        }

        mutating func drain(into history: inout RunHistory) {
            for index in 0..<count { history.apply((storage + index).move()) }
            count = 0
        }

        deinit {
            storage.deinitialize(count: count)
            storage.deallocate()
        }
    }

    /// Waits until `ready` holds for the history read so far, or the whole run is read; then
    /// returns what `body` makes of it (its second argument: the whole run is read).
    /// - Throws: the error that ended the reading of the log.
    nonisolated(nonsending) func read<R: Sendable>(until ready: (borrowing RunHistory) -> Bool,
                           _ body: (borrowing RunHistory, Bool) throws -> R) async throws -> R {
        while true {
            let (result, generation): (R?, Int) = try state.withLock { state in
                if state.finished, let error = state.error { throw error }
                guard state.finished || ready(state.history) else { return (nil, state.generation) }
                return (try body(state.history, state.finished), state.generation)
            }
            if let result { return result }
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    guard state.generation == generation else { return true }
                    state.waiters.append(waiter)
                    return false
                }
                if resumeNow { waiter.resume() }
            }
        }
    }

    /// The count of the run's events and its lock, once the whole run is read.
    func summary() async throws -> (eventsRead: Int, lock: [LockEntry]) {
        try await read(until: { _ in false }) { history, _ in (history.eventsRead, history.lock) }
    }

    /// Lets go of the history read, freeing it on a thread of its own: a long run's history takes
    /// tens of milliseconds to free, and the replay's result does not wait for that.
    func discard() {
        let history = state.withLock { state in
            var taken = RunHistory()
            swap(&taken, &state.history)
            return taken
        }
        let parcel = Mutex<RunHistory?>(consume history)
        DetachedThread { parcel.withLock { $0 = nil } }.start()
    }

    /// Stops reading and waits for the thread to let go of the log.
    func stop() async {
        stopping.store(true, ordering: .relaxed)
        _ = try? await read(until: { _ in false }) { _, _ in () }
    }
}
