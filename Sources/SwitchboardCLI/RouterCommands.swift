// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import Switchboard
import Synchronization
import SwitchboardLog
import SwitchboardRouter
import SwitchboardWire

/// Set by SIGTERM/SIGINT; the serving loops check it every poll interval.
let stopRequested = Atomic<Bool>(false)

/// Runs `host` until SIGTERM or SIGINT, then drains it.
func serve(_ host: AgentHost) async {
    await withDiscardingTaskGroup { group in
        group.addTask { await host.run() }
        group.addTask {
            while !stopRequested.load(ordering: .relaxed) {
                try? await Task.sleep(for: .milliseconds(50))
            }
            await host.shutdown()
        }
    }
}

func stopOnSignals() {
    // Past the file-size limit (ulimit -f) a write then fails with EFBIG, which the log reports
    // with what to do, instead of the signal killing the process without a word.
    signal(SIGXFSZ, SIG_IGN)
    // A parent may have started us with these signals blocked (a blocked mask is inherited).
    var unblocked = sigset_t()
    sigemptyset(&unblocked)
    for signalNumber in [SIGTERM, SIGINT] {
        sigaddset(&unblocked, signalNumber)
        signal(signalNumber) { _ in stopRequested.store(true, ordering: .relaxed) }
    }
    pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
}

struct RouterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Run the router: MDP/0.2 on a ROUTER socket, every message committed to the log first.",
        discussion: """
            Clients and workers speak MDP/0.2 (ZeroMQ RFC 18), with or without an empty frame before the
            header. Requests that a previous router committed but never answered are redelivered. Stops
            on SIGTERM or SIGINT.
            """)
    @OptionGroup var options: DataOption
    @Option(help: "Endpoint to bind, e.g. tcp://127.0.0.1:5555, ipc:///tmp/sb.sock.") var bind: String
    @Option(help: "Endpoint of the event bus (XPUB).") var events: String?
    @Option(help: "fsync, buffered or none.") var durability: String = "fsync"
    @Option(help: "Heartbeat interval towards workers, in milliseconds.") var heartbeat: Int = 2500
    @Option(help: "A policy file (JSON, docs/policy.md): every request is decided ALLOW, DENY or REQUEST_APPROVAL.")
    var policy: String?

    func run() throws {
        let policy = try loadPolicy(self.policy)
        guard let durability = Durability(rawValue: durability) else {
            throw ValidationError("--durability must be fsync, buffered or none")
        }
        guard heartbeat >= 10 else { throw ValidationError("--heartbeat must be at least 10 ms") }
        stopOnSignals()
        try reportingErrors {
            let log = try EventLog.open(
                at: options.data, configuration: .init(durability: durability, projections: Router.projections))
            let router = Router(
                configuration: RouterConfiguration(endpoint: bind, eventsEndpoint: events, heartbeatInterval: heartbeat,
                                                   policy: policy),
                log: log, context: try ZMQContext())
            do {
                try router.run(until: { stopRequested.load(ordering: .relaxed) }) { endpoint, events in
                    print("router listening on \(endpoint)" + (events.map { ", events on \($0)" } ?? ""))
                    fflush(nil)
                }
            } catch let error as EventLogError where error.code == .storage {
                FileHandle.standardError.write(Data("""
                    error: \(error.message)
                    the router stopped: it sent nothing the log does not hold. Once the log can be written \
                    again, start the router on the same data directory: it redelivers the requests it \
                    committed and did not answer, and clients ask again for the rest.

                    """.utf8))
                throw ExitCode.failure
            }
            let counters = router.statistics
            print("router stopped: \(counters.invalidMessages) invalid messages and \(counters.duplicateReplies) duplicate replies dropped")
        }
    }
}

struct TailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print committed events as CloudEvents JSON lines as they happen, without gap or duplicate.")
    @Option(help: "The router's endpoint (for catch-up through sb.events).") var router: String
    @Option(help: "The router's event bus endpoint.") var events: String
    @Option(name: .customLong("run"), help: "Only events of this run.") var runID: String?
    @Option(help: "Start at this position; without it, only events from now on.") var from: UInt64 = 0
    @Option(help: "Exit after this many events.") var limit: Int = .max

    func run() throws {
        stopOnSignals()
        var printed = 0
        let observer = try EventObserver(context: try ZMQContext(), router: router, events: events, from: from,
                                         run: runID)
        try observer.run(until: { stopRequested.load(ordering: .relaxed) }) { _, json in
            print(json)
            fflush(nil)
            printed += 1
            return printed < limit
        }
    }
}
