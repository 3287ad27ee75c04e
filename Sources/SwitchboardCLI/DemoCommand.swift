// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import Logging
import Switchboard
import SwitchboardLog
import SwitchboardRouter
import SwitchboardServices
import SwitchboardWire
import SwitchboardWorkflows

/// The demo's policy: the executor needs a human's approval to write notes; LLM calls are capped.
let demoPolicy = Policy(rules: [
    .init(name: "notes-need-approval", agent: "executor", service: "tool.notes.*", decision: .requestApproval),
    .init(name: "llm-budget", service: "llm.*", decision: .allow, maxCalls: 20, maxCostPerRun: 1.0),
])

/// Router, agents, services and tools in this process: the log in a directory, the router on a
/// loopback port (so `switchboard approve … --router` works from another terminal).
struct EmbeddedSystem {
    let router: EmbeddedRouter
    let host: AgentHost
    let servers: [MCPToolServer]
    let client: HTTPClient
    let llm: String

    enum Model: String, ExpressibleByArgument, CaseIterable {
        case auto, local, scripted
    }

    static func start(data: String, model: Model, policy: Policy?, notes: String) async throws -> EmbeddedSystem {
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let port = Int(ProcessInfo.processInfo.environment["SWITCHBOARD_LLM_PORT"] ?? "") ?? 8077
        let localUp = listening(port: port)
        let useLocal: Bool
        switch model {
        case .local:
            guard localUp else {
                throw ValidationError("""
                    the local model is not answering on 127.0.0.1:\(port). Set it up and start it with
                      ./scripts/local-llm.sh setup && ./scripts/local-llm.sh start
                    or run with --model scripted (scripted answers, same agents and router).
                    """)
            }
            useLocal = true
        case .scripted: useLocal = false
        case .auto:
            useLocal = localUp
            if !localUp {
                print("note: no local model on 127.0.0.1:\(port) (./scripts/local-llm.sh setup && start); "
                      + "using --model scripted")
            }
        }
        let environment = ProcessInfo.processInfo.environment
        let home = environment["HOME"] ?? "/root"
        let candidates = (environment["PATH"] ?? "").split(separator: ":").map { "\($0)/mcp-server-time" }
            + ["\(home)/.cache/switchboard/venv/bin/mcp-server-time"]
        guard let timeServer = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ValidationError("mcp-server-time is not installed: run ./scripts/python-env.sh (it installs it into "
                                  + "~/.cache/switchboard/venv)")
        }
        let client = HTTPClient()
        let gateway = LLMGatewayConfiguration.local(port: port)
        let llm = useLocal ? gateway.serviceName : "llm.scripted"
        let server = try await MCPToolServer.connect(MCPServerConfiguration(
            name: "time", transport: .stdio(command: timeServer, arguments: [], environment: nil)))
        let router = try EmbeddedRouter(
            directory: data, configuration: RouterConfiguration(endpoint: "tcp://127.0.0.1:*", policy: policy))
        var types = [AgentType(WorkflowEngine.self)]
            + PlanCriticExecute.agentTypes(llmService: llm, notesDirectory: notes) + server.agentTypes
        types.append(useLocal ? LLMGateway.agentType(gateway, client: client) : ScriptedModel.agentType())
        var logger = Logger(label: "switchboard.demo", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .error
        let host = try AgentHost(types: types, configuration: .init(endpoint: router.endpoint), context: router.context,
                                 logger: logger)
        return EmbeddedSystem(router: router, host: host, servers: [server], client: client, llm: llm)
    }

    /// Hosts the agents while a run of `service` is started and followed (see ``followRun``);
    /// `waitFor` names the services to wait for first.
    func follow(_ service: String, input: Payload, waitFor: [String], approvals: ApprovalMode, quiet: Bool = false,
                key: String? = nil, timeout: Int) async throws -> (String, RunClient.Result) {
        let (host, router) = (self.host, self.router)
        return try await withThrowingTaskGroup(of: (String, RunClient.Result)?.self,
                                               returning: (String, RunClient.Result).self) { group in
            group.addTask {
                await host.run()
                return nil
            }
            let outcome = try await onOwnThread {
                try followRun(router: router.endpoint, context: router.context, service: service, input: input,
                              services: waitFor, approvals: approvals, quiet: quiet, key: key, timeout: timeout)
            }
            await host.shutdown()
            for try await _ in group {}
            return outcome
        }
    }

    func stop() async throws {
        await host.shutdown()
        for server in servers { await server.shutdown() }
        client.shutdown()
        try router.stop()
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func listening(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

/// The policy file at `path`, checked; nil for no path.
func loadPolicy(_ path: String?) throws -> Policy? {
    do {
        return try path.map(Policy.load(path:))
    } catch let error as PolicyError {
        throw ValidationError(error.message)
    }
}

/// Runs `body` on a thread of its own (it blocks on sockets), off Swift's cooperative pool.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// How a followed run treats approval requests.
enum ApprovalMode {
    /// Approve each at once (`--yes`).
    case approveAll
    /// Ask on the terminal when there is one; otherwise wait for `switchboard approve`.
    case ask
    /// Leave them to `switchboard approve`.
    case wait
}

/// Starts `service` with `input`, prints the run's events as they commit, answers approvals as
/// `approvals` says, and returns the run's result.
func followRun(router: String, context: ZMQContext, service: String, input: Payload, services: [String],
               approvals: ApprovalMode, quiet: Bool = false, key: String? = nil, timeout: Int) throws
    -> (String, RunClient.Result)
{
    try followRun(router: router, context: context, services: services, approvals: approvals, quiet: quiet,
                  timeout: timeout) { client in
        try client.start(service, input: input, key: key)
    }
}

/// Starts a run with `start` (which returns its id), prints its events as they are committed,
/// answers its approvals as `approvals` says, and returns its result.
func followRun(router: String, context: ZMQContext, services: [String], approvals: ApprovalMode,
               quiet: Bool = false, timeout: Int, start: (RunClient) throws -> String) throws
    -> (String, RunClient.Result)
{
    let client = try RunClient(context: context, endpoint: router)
    for name in services where try !client.waitForService(name, timeout: 30_000) {
        throw WireError(.timeout, "\(name) did not register with the router within 30 s")
    }
    let runID = try start(client)
    print("run \(runID)")
    fflush(nil)
    var next: UInt64 = 1
    let deadline = Date().addingTimeInterval(TimeInterval(timeout))
    var routerSilent = false
    func printEvents() throws {
        let events: [(UInt64, String)]
        do {
            let after: UInt64
            (events, after) = try client.events(of: runID, from: next)
            next = after
        } catch let error as WireError where error.code == .timeout {
            // The router may be restarting: the run goes on, its result comes when it is back.
            if !routerSilent {
                FileHandle.standardError.write(Data("the router at \(router) is not answering; waiting for it\n".utf8))
                routerSilent = true
            }
            return
        }
        routerSilent = false
        for (position, json) in events {
            if !quiet { print(RunStart.line(position, json)) }
            guard json.contains("\"approval.requested\""),
                  let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
                  object["type"] as? String == "approval.requested",
                  let data = object["data"] as? [String: Any], let id = data["id"] as? String
            else { continue }
            let title = data["title"] as? String ?? ""
            print("approval \(id) pending: \(title)")
            switch approvals {
            case .approveAll:
                _ = try control(router, ["op": "decide", "id": id, "approved": true, "note": "approved with --yes"])
                print("approved \(id) (--yes)")
            case .ask where isatty(0) == 1:
                print("approve? [y/N] ", terminator: "")
                fflush(nil)
                let answer = readLine()?.lowercased() ?? ""
                if answer == "y" || answer == "yes" {
                    _ = try control(router, ["op": "decide", "id": id, "approved": true, "note": "approved at the prompt"])
                } else {
                    _ = try control(router, ["op": "decide", "id": id, "approved": false, "reason": "declined at the prompt"])
                }
            default:
                print("  answer with: switchboard approve \(id) --router \(router)   (or reject \(id) --reason …)")
            }
            fflush(nil)
        }
        fflush(nil)
    }
    while Date() < deadline {
        if let result = try client.nextResult(timeout: 100) {
            try printEvents()
            return (runID, result)
        }
        try printEvents()
    }
    throw WireError(.timeout, "run \(runID) gave no result within \(timeout) s")
}

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run planner → critic → executor in one process, print it live, and replay it.",
        discussion: """
            Embedded mode: the router (log in --data, default ./.switchboard), the workflow engine, the planner,
            critic and executor, the LLM gateway and the MCP time server all run here. The planner asks the
            model for a JSON plan under a schema; the critic reviews it (at most three plans); the executor
            calls the time tools and writes a note, which the demo policy sends to a human first: answer at
            the prompt, with --yes, or from another terminal with `switchboard approve ID --router ENDPOINT`.
            Then the run is replayed from the log and must be identical.
            --model auto uses the local model from scripts/local-llm.sh when it answers, else scripted answers.
            """)
    @Option(help: "auto, local or scripted.") var model: EmbeddedSystem.Model = .auto
    @Option(help: "What to plan for.") var goal: String = PlanCriticExecute.defaultGoal
    @Option(help: "The log's data directory.") var data: String = defaultDataDirectory
    @Option(help: "A policy file (JSON) instead of the demo's policy.") var policy: String?
    @Flag(help: "Approve every approval request at once.") var yes = false
    @Option(help: "Give up after this many seconds.") var timeout: Int = 900

    func run() async throws {
        let policy = try loadPolicy(self.policy) ?? demoPolicy
        let system = try await EmbeddedSystem.start(data: data, model: model, policy: policy, notes: data + "/notes")
        print("router on \(system.router.endpoint), log in \(data), model \(system.llm)")
        let input = try WorkflowEngine.startMessage(PlanCriticExecute.definition, input: ["goal": .string(goal)])
        let (runID, outcome) = try await system.follow(
            WorkflowEngine.descriptor.name, input: input, waitFor: system.host.serviceNames,
            approvals: yes ? .approveAll : .ask, timeout: timeout)
        if let error = outcome.error {
            print("error: \(error.code): \(error.message)")
        } else {
            print("result: \(outcome.payload.text)")
        }
        let events = try system.router.router.log.events(inRun: runID)
        let report = try await Replayer.replay(run: runID, log: system.router.router.log, types: replayTypes(for: events))
        try await system.stop()
        if let divergence = report.divergence {
            print("replay: DIVERGENT at position \(divergence.position): \(divergence)")
            throw ExitCode.failure
        }
        print("replay: identical, \(report.stepsChecked) steps checked in \(String(format: "%.1f", report.seconds * 1000)) ms")
        print("replay it yourself: switchboard replay \(runID) --data \(data)")
        print("inspect it:         switchboard show \(runID) --data \(data)")
        if outcome.error != nil { throw ExitCode.failure }
    }
}
