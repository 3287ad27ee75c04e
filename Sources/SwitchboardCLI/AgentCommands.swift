// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import Switchboard
import SwitchboardLog
import SwitchboardServices
import SwitchboardRouter
import SwitchboardWire
import SwitchboardWorkflows

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Host built-in agents as native workers of a router.",
        discussion: """
            Each agent type registers with the router under its name, with its version and config digest
            (recorded in the lock of every run it serves). Reconnects after a router restart. On SIGTERM or
            SIGINT it stops taking messages, finishes the ones under way, and leaves the router.
            Built-in agents: \(BuiltinAgents.all.map(\.descriptor.name).joined(separator: ", ")); the workflow
            engine `workflow`; the demo's planner, critic, executor, tool.notes.write, tool.notes.delete and
            llm.scripted (scripted model answers).
            """)
    @Option(help: "The router's endpoint, e.g. tcp://127.0.0.1:5555.") var router: String
    @Option(help: "Comma-separated agent names.") var agents: String
    @Option(help: "Messages each agent type takes at once.") var capacity: Int = 256
    @Option(help: "Heartbeat interval towards the router, in milliseconds.") var heartbeat: Int = 2500
    @Option(help: "The LLM service the planner and critic ask.") var llm: String = "llm.local"
    @Option(help: "Where notes.write keeps notes.") var notes: String = defaultDataDirectory + "/notes"

    func run() async throws {
        let names = agents.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw ValidationError("--agents names at least one agent") }
        guard heartbeat >= 10 else { throw ValidationError("--heartbeat must be at least 10 ms") }
        let types = try hostedTypes(names, llm: llm, notes: notes)
        stopOnSignals()
        let host = try AgentHost(types: types, configuration: AgentHostConfiguration(
            endpoint: router, capacity: capacity, heartbeatInterval: heartbeat))
        print("agents \(names.joined(separator: ", ")) serving at \(router)")
        fflush(nil)
        await serve(host)
        print("agent host stopped after \(host.handledCount) messages")
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a run (the default), or pause, resume or cancel one.",
        subcommands: [RunStart.self, RunPause.self, RunResume.self, RunCancel.self],
        defaultSubcommand: RunStart.self)
}

struct RunStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a run: send INPUT to agent NAME or run workflow NAME, print its events, exit with its result.",
        discussion: """
            NAME is an agent (service) such as pipeline, a workflow file (JSON, see docs/workflows.md), or the
            built-in workflow plan-critic-execute. A workflow is started on the `workflow` agent with its
            definition in the first message. Without --router it runs embedded: router, agents and services
            in this process, the log in --data (default ./.switchboard).
            Prints `run <id>`, then each committed event of the run as `<position> <type> <data>`, then
            `result: <reply>`. Exits 0 when the reply is a result, 1 when it is an error.
            If the router stops meanwhile (a crash, a full disk), the command waits for it to come back (within
            --timeout) and sends the run's first message again, marked re-issued, while the result is overdue:
            the router answers it from its log or attaches it to the run, so nothing runs twice.
            """)
    @Argument(help: "An agent (e.g. pipeline), a workflow file, or plan-critic-execute.") var name: String
    @Option(help: "The first message (for a workflow: its input), as JSON.") var input: String = "{}"
    @Option(help: "The router's endpoint, e.g. tcp://127.0.0.1:5555; embedded mode without it.") var router: String?
    @Option(help: "Embedded mode: the log's data directory.") var data: String = defaultDataDirectory
    @Option(help: "Embedded mode: auto, local or scripted.") var model: EmbeddedSystem.Model = .auto
    @Option(help: "Embedded mode: a policy file (JSON).") var policy: String?
    @Flag(help: "Approve every approval request of the run at once.") var yes = false
    @Option(help: "The instance key (default: the run id).") var key: String?
    @Option(help: "Give up after this many seconds.") var timeout: Int = 60
    @Flag(help: "Print only the run id and the result.") var quiet = false
    @Option(help: "Start this many runs of the same input and print throughput instead of events (a load test).")
    var count: Int = 1
    @Option(help: "With --count: runs in flight at once.") var concurrency: Int = 100

    var isWorkflow: Bool { name == PlanCriticExecute.definition.name || name.hasSuffix(".json") || name.contains("/") }

    func run() async throws {
        guard (try? JSONSerialization.jsonObject(with: Data(input.utf8), options: [.fragmentsAllowed])) != nil else {
            throw ValidationError("--input is not valid JSON: \(input)")
        }
        guard count >= 1, concurrency >= 1 else { throw ValidationError("--count and --concurrency must be at least 1") }
        var service = name
        var payload = Payload(text: input)
        if isWorkflow {
            let definition = try loadWorkflow(name)
            let value = (try? JSONValue(parsing: Array(input.utf8))) ?? .object([:])
            payload = try WorkflowEngine.startMessage(definition, input: value)
            service = WorkflowEngine.descriptor.name
        }
        guard let router else { return try await embedded(service: service, payload: payload) }
        if count > 1 { return try load(router: router, service: service, payload: payload) }
        let approvals: ApprovalMode = yes ? .approveAll : .wait
        let (_, result) = try reportingErrors {
            try followRun(router: router, context: try ZMQContext(), service: service, input: payload, services: [],
                          approvals: approvals, quiet: quiet, key: key, timeout: timeout)
        }
        try printResult(result)
    }

    private func embedded(service: String, payload: Payload) async throws {
        let system = try await EmbeddedSystem.start(data: data, model: model, policy: try loadPolicy(policy),
                                                    notes: data + "/notes")
        let outcome = try await system.follow(service, input: payload, waitFor: [service],
                                              approvals: yes ? .approveAll : .ask, quiet: quiet, key: key,
                                              timeout: timeout)
        try await system.stop()
        try printResult(outcome.1)
    }

    /// Starts `count` runs, `concurrency` at a time, and prints runs/s and latency.
    private func load(router: String, service name: String, payload: Payload) throws {
        try reportingErrors {
            let client = try RunClient(context: try ZMQContext(), endpoint: router)
            guard try client.waitForService(name, timeout: timeout * 1000) else {
                throw WireError(.timeout, "no worker offers \(name) within \(timeout) s")
            }
            var started: [String: UInt64] = [:]
            var latencies: [UInt64] = []
            var failures = 0
            var sent = 0
            let begin = DispatchTime.now().uptimeNanoseconds
            while latencies.count + failures < count {
                while sent < count && started.count < concurrency {
                    started[try client.start(name, input: payload, key: key)] = DispatchTime.now().uptimeNanoseconds
                    sent += 1
                }
                guard let result = try client.nextResult(timeout: timeout * 1000) else {
                    let open = started.keys.sorted()
                    throw WireError(.timeout, "no result within \(timeout) s (\(open.count) runs open: "
                                        + open.prefix(5).joined(separator: ", ") + (open.count > 5 ? ", …)" : ")"))
                }
                let at = started.removeValue(forKey: result.runID) ?? begin
                if result.error != nil { failures += 1 } else { latencies.append(DispatchTime.now().uptimeNanoseconds - at) }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            latencies.sort()
            func percentile(_ p: Double) -> Double {
                latencies.isEmpty ? 0 : Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6
            }
            print(String(format: "%d runs in %.2f s: %.0f runs/s, p50 %.2f ms, p99 %.2f ms, %d failed",
                         count, seconds, Double(count) / seconds, percentile(0.5), percentile(0.99), failures))
            if failures > 0 { throw ExitCode.failure }
        }
    }

    /// `<position> <type> <data>` from a CloudEvent.
    static func line(_ position: UInt64, _ json: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            return "\(position) \(json)"
        }
        let type = object["type"] as? String ?? "?"
        var data = ""
        if let value = object["data"], let encoded = try? JSONSerialization.data(
            withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes]) {
            data = String(decoding: encoded, as: UTF8.self)
        } else if let base64 = object["data_base64"] as? String {
            data = "(\(base64.count * 3 / 4) bytes)"
        }
        if let fields = object["data"] as? [String: Any], let body = fields["body"] as? [String] {
            // A message: show its service and its payload, not the base64 frames with the envelope.
            let frames = body.compactMap { Data(base64Encoded: $0) }.filter { !$0.starts(with: [0x53, 0x42, 0x45, 0x01]) }
            let text = frames.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " | ")
            let service = (fields["service"] as? String).map { "\($0) " } ?? ""
            data = service + text
        }
        if data.count > 160 { data = String(data.prefix(160)) + "…" }
        return "\(position) \(type) \(data)"
    }
}

/// Prints a run's result, or its error and exits 1.
func printResult(_ result: RunClient.Result) throws {
    if let error = result.error {
        print("error: \(error.code): \(error.message)")
        throw ExitCode.failure
    }
    print("result: \(result.payload.text)")
}

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-execute a run's agents against the log and prove it produced the same thing.",
        discussion: """
            Opens the log read-only (no router, no network): every ask is answered from its recorded reply,
            and every ask (service, payload hash, order), emitted event and reply is compared with the log.
            Exit 0: identical. Exit 1: divergent, with the first divergent position, expected and actual.
            Exit 2: an agent's version or config digest differs from the run's lock (see `lock show`),
            unless --allow-drift. Re-executes the built-in agents, the workflow engine and the demo's planner,
            critic and executor; tools and LLM gateways are not called again, their recorded replies are used.

            Fork: `replay RUN --fork --until POS --router ENDPOINT` asks the router for a new run whose history up
            to log position POS (default: the log's end) is RUN's. Its first message is RUN's again; every ask it
            makes that RUN made with the same service and payload, and had answered by POS, gets RUN's answer
            (logged in the fork with a link to RUN's position); the first ask that differs, or comes after POS,
            is served live. Prints the fork's run id and events, then its result, like `run`.
            """)
    @Argument(help: "The run id.") var runID: String
    @Option(name: .long, help: ArgumentHelp("The log's data directory (not needed with --fork).", valueName: "dir"))
    var data: String?
    @Flag(help: "Replay even when an agent's version or config differs from the run's lock.") var allowDrift = false
    @Flag(help: "Start a new run that borrows this run's history up to --until and goes on live (needs --router).")
    var fork = false
    @Option(help: "With --fork: the last log position of the borrowed history (default: the log's end).")
    var until: UInt64?
    @Option(help: "With --fork: the router's endpoint, e.g. tcp://127.0.0.1:5555.") var router: String?
    @Flag(help: "With --fork: approve the fork's approval requests at once.") var yes = false
    @Option(help: "With --fork: give up after this many seconds.") var timeout: Int = 60

    func validate() throws {
        if fork {
            guard router != nil else { throw ValidationError("--fork needs --router: the router runs the fork") }
        } else {
            guard data != nil else { throw ValidationError("replay needs --data DIR (the log to replay)") }
            guard until == nil, router == nil else { throw ValidationError("--until and --router go with --fork") }
        }
    }

    func run() async throws {
        if fork, let router {
            let (_, result) = try reportingErrors {
                try followRun(router: router, context: try ZMQContext(), services: [],
                              approvals: yes ? .approveAll : .wait, timeout: timeout) { client in
                    let fork = try client.fork(runID, until: until)
                    print("forked \(runID) at position \(until.map(String.init) ?? "end")")
                    return fork
                }
            }
            return try printResult(result)
        }
        let log = try reportingErrors { try EventLog.openReadOnly(at: data ?? "") }
        let report: ReplayReport
        do {
            let events = try log.events(inRun: runID)
            report = try await Replayer.replay(run: runID, log: log, types: replayTypes(for: events),
                                               allowDrift: allowDrift)
        } catch let error as EventLogError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode.failure
        }
        for drift in report.drift {
            print("DRIFT \(drift)")
        }
        if report.exitCode == 2 {
            print("refused: the run's lock does not match the agents registered now (--allow-drift replays anyway)")
            throw ExitCode(2)
        }
        if let divergence = report.divergence {
            print("""
                DIVERGENT at position \(divergence.position) in \(divergence.agent)
                  expected: \(divergence.expected)
                  actual:   \(divergence.actual)
                """)
            throw ExitCode.failure
        }
        let unfinished = report.unfinishedMessages > 0
            ? "; \(report.unfinishedMessages) message(s) end without a reply in the log, replayed as far as recorded"
            : ""
        print("identical: run \(runID), \(report.eventsRead) events read, \(report.stepsChecked) steps checked, "
              + "\(report.messagesReplayed) messages re-executed in \(String(format: "%.1f", report.seconds * 1000)) ms"
              + unfinished)
    }
}

struct LockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock", abstract: "Determinism locks: what each run used.", subcommands: [LockShow.self])
}

struct LockShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a run's lock: each service it used, with version and config digest.",
        discussion: "One line per entry: service, version, config digest (- for none), log position.")
    @Argument(help: "The run id.") var runID: String
    @OptionGroup var options: DataOption

    func run() throws {
        try reportingErrors {
            let log = try EventLog.openReadOnly(at: options.data)
            let events = try log.events(inRun: runID)
            guard !events.isEmpty else { throw EventLogError(.notFound, "the log has no run \(runID)") }
            let entries = Replayer.lock(in: events)
            if entries.isEmpty { print("run \(runID) has no lock entries (no native agent served it)") }
            for entry in entries {
                let digest = entry.configDigest.isEmpty ? "-" : entry.configDigest
                print("\(entry.service)  version \(entry.version)  config \(digest)  at \(entry.position)")
            }
            // Model settings the LLM gateways recorded: model, sampling parameters, prompt template.
            for event in events where event.type == "llm.locked" {
                guard let lock = try? JSONDecoder().decode(LLMGatewayEvent.self, from: Data(event.payload)).lock else {
                    continue
                }
                let parameters = (try? Payload(json: lock.parameters).text) ?? "{}"
                print("\(lock.service)  model \(lock.model)  parameters \(parameters)  template \(lock.template)  "
                      + "at \(event.position)")
            }
        }
    }
}
