// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization
import SwitchboardLog
import SwitchboardWire
#if canImport(Glibc)
import Glibc
#endif

/// Commits the router's batches on a thread of its own, so the router keeps reading, deciding and
/// dispatching while the disk syncs. Batches that queue up meanwhile are committed together, in
/// order, in one write transaction: one fsync for all of them (group commit across cycles).
///
/// Completions are announced on an `inproc` PAIR socket that the router polls with its other
/// sockets; ``takeCompleted()`` then hands over the recorded events of each finished batch.
final class LogWriter: Sendable {
    struct Completed {
        var batch: UInt64
        /// A part of the commit's events: splitting them into arrays would copy each.
        var events: ArraySlice<RecordedEvent>
    }

    private struct State {
        /// Batch numbers and their events, apart: the events are handed to the log as they are.
        var batches: [UInt64] = []
        var events: [[NewEvent]] = []
        var completed: [Completed] = []
        var failure: (any Error)?
        var stopping = false
    }

    private let log: EventLog
    private let context: ZMQContext
    private let endpoint: String
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameter endpoint: an `inproc://` name the owner has bound a PAIR socket to.
    init(log: EventLog, context: ZMQContext, endpoint: String) {
        self.log = log
        self.context = context
        self.endpoint = endpoint
    }

    func submit(batch: UInt64, events: [NewEvent]) {
        state.withLock { state in
            state.batches.append(batch)
            state.events.append(events)
        }
        wakeup.signal()
    }

    /// Batches committed since the last call, in order, and the error that stopped the writer, if
    /// one did: the batches committed before it still have to be delivered.
    func takeCompleted() -> (completed: [Completed], failure: (any Error)?) {
        state.withLock { state in
            defer { state.completed = [] }
            return (state.completed, state.failure)
        }
    }

    func start() {
        // The thread lets go of this writer (and its log) before it says it is done, so the log
        // can be opened again as soon as the owner drops the writer after `stop()`.
        let running = Mutex<LogWriter?>(self)
        let finished = self.finished
        DetachedThread {
            running.withLock { $0 }?.run()
            running.withLock { $0 = nil }
            finished.signal()
        }.start()
    }

    /// Stops after the batches already submitted, and waits for that.
    func stop() {
        state.withLock { $0.stopping = true }
        wakeup.signal()
        finished.wait()
    }

    private func run() {
        let notify: ZMQSocket
        do {
            notify = try ZMQSocket(context, type: .pair)
            try notify.connect(endpoint)
        } catch {
            state.withLock { $0.failure = error }
            return
        }
        while true {
            wakeup.wait()
            let (batches, events, stopping) = state.withLock { state in
                defer {
                    state.batches = []
                    state.events = []
                }
                return (state.batches, state.events, state.stopping)
            }
            if !batches.isEmpty {
                do {
                    let counts = events.map(\.count)
                    // Handed over whole, as their last use: the log moves the events' fields into
                    // the recorded events. Batches of sends alone need no transaction.
                    let recorded = counts.allSatisfy { $0 == 0 } ? [] : try log.append(batches: consume events).events
                    var offset = 0
                    let completed = batches.indices.map { index in
                        defer { offset += counts[index] }
                        return Completed(batch: batches[index], events: recorded[offset..<offset + counts[index]])
                    }
                    state.withLock { $0.completed += completed }
                } catch {
                    // Nothing after a failed batch may be committed: later batches can depend on it.
                    state.withLock { $0.failure = error }
                    _ = try? notify.send([[1]], wait: false)
                    return
                }
                _ = try? notify.send([[1]], wait: false)
            }
            if stopping { return }
        }
    }
}
