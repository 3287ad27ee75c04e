// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization
public import SwitchboardLog
public import SwitchboardRouter
public import SwitchboardWire

/// A router on a thread of this process, for embedded mode (router and agents in one process over
/// `inproc://`) and for tests.
public final class EmbeddedRouter: Sendable {
    public let router: Router
    public let context: ZMQContext
    /// The endpoint as bound (a `tcp://…:*` endpoint shows its port).
    public let endpoint: String
    public let eventsEndpoint: String?
    private let status = Status()

    private final class Status: Sendable {
        let done = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
    }

    /// Opens (or creates) the log at `directory` and starts the router; returns once it listens.
    public convenience init(directory: String, configuration: RouterConfiguration,
                            durability: Durability = .fsync, context: ZMQContext? = nil) throws {
        let log = try EventLog.open(at: directory,
                                    configuration: .init(durability: durability, projections: Router.projections))
        try self.init(log: log, configuration: configuration, context: context)
    }

    public init(log: EventLog, configuration: RouterConfiguration, context: ZMQContext? = nil) throws {
        let context = try context ?? ZMQContext()
        let router = Router(configuration: configuration, log: log, context: context)
        self.router = router
        self.context = context
        let listening = DispatchSemaphore(value: 0)
        let endpoints = Mutex<(String, String?)>(("", nil))
        let status = self.status
        // The thread lets go of the router (and its log) before it says it is done, so the log
        // can be opened again as soon as `stop()` returns and the caller drops this object.
        let running = Mutex<Router?>(router)
        let thread = DetachedThread {
            do {
                try running.withLock { $0 }?.run(onListening: { endpoint, events in
                    endpoints.withLock { $0 = (endpoint, events) }
                    listening.signal()
                })
            } catch {
                status.failure.withLock { $0 = error }
            }
            running.withLock { $0 = nil }
            listening.signal()
            status.done.signal()
        }
        thread.start()
        listening.wait()
        if let error = status.failure.withLock({ $0 }) { throw error }
        (endpoint, eventsEndpoint) = endpoints.withLock { $0 }
    }

    /// Stops the router and waits until its thread returned; rethrows what stopped it early.
    public func stop() throws {
        router.stop()
        status.done.wait()
        status.done.signal()
        if let error = status.failure.withLock({ $0 }) { throw error }
    }
}
