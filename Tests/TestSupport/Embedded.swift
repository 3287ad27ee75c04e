// SPDX-License-Identifier: Apache-2.0
public import Switchboard
import SwitchboardRouter
import SwitchboardWire

/// A router and an agent host in this process over `inproc://`, with the log in a temp dir.
public struct Embedded: Sendable {
    public let router: EmbeddedRouter
    public let host: AgentHost

    public init(router: EmbeddedRouter, host: AgentHost) {
        self.router = router
        self.host = host
    }

    public init(directory: String, types: [AgentType] = BuiltinAgents.all, heartbeat: Int = 2500) throws {
        router = try EmbeddedRouter(
            directory: directory,
            configuration: RouterConfiguration(endpoint: "inproc://agents-\(UInt64.random(in: 0...UInt64.max))",
                                               heartbeatInterval: heartbeat),
            durability: .none)
        host = try AgentHost(types: types, configuration: .init(endpoint: router.endpoint, heartbeatInterval: heartbeat),
                             context: router.context)
    }

    /// Runs the host while `body` runs, then shuts both down.
    public func serving<T: Sendable>(_ body: @escaping @Sendable (Embedded) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await host.run()
                return nil
            }
            let result = try await body(self)
            await host.shutdown()
            for try await _ in group {}
            return result
        }
    }

    /// Starts runs and waits for all their results (on a thread of its own: the client blocks).
    public func runs(_ service: String, inputs: [Payload], key: String? = nil) async throws -> [RunClient.Result] {
        let context = router.context
        let endpoint = router.endpoint
        let services = host.serviceNames
        return try await onThread {
            let client = try RunClient(context: context, endpoint: endpoint)
            // Under a loaded test run the host may take a while to register: wait for it, not for a timer.
            for name in services where try !client.waitForService(name, timeout: 120_000) {
                    throw TestFailure("\(name) did not register with the router")
                }
            for input in inputs { try client.start(service, input: input, key: key) }
            var results: [RunClient.Result] = []
            while results.count < inputs.count, let result = try client.nextResult(timeout: 30_000) {
                results.append(result)
            }
            return results
        }
    }
}


/// A test precondition that did not hold, thrown from helpers that cannot use `#require`.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
