// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import SwitchboardLog
import Switchboard
import SwitchboardWire

@main
struct SwitchboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "An event-sourced actor system for AI-agent workflows.",
        discussion: "Every message and state transition is committed to an append-only event log in LMDB.",
        subcommands: [
            LogCommand.self, RouterCommand.self, AgentCommand.self, RunCommand.self, ReplayCommand.self,
            LockCommand.self, TailCommand.self, ServicesCommand.self, DemoCommand.self, RunsCommand.self,
            ShowCommand.self, ApprovalsCommand.self, ApproveCommand.self, RejectCommand.self, WorkflowCommand.self,
        ]
    )
}

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Inspect, verify and write the event log.",
        subcommands: [LogStat.self, LogVerify.self, LogDump.self, LogAppend.self, LogRebuild.self, LogBench.self]
    )
}

struct DataOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The log's data directory.", valueName: "dir"))
    var data: String
}

/// Runs `body`, turning an event-log error into a message on stderr and exit code 1.
func reportingErrors<R>(_ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let error as EventLogError {
        FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
        throw ExitCode.failure
    } catch let error as WireError {
        FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
        throw ExitCode.failure
    } catch let error as ForkRefused {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

struct LogStat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat", abstract: "Print counts and sizes: events, last position, runs, file size.")
    @OptionGroup var options: DataOption

    func run() throws {
        let stats = try reportingErrors { try EventLog.openReadOnly(at: options.data).statistics() }
        print("""
            log:            \(stats.identifier)
            events:         \(stats.eventCount)
            last position:  \(stats.lastPosition)
            runs:           \(stats.runCount)
            index entries:  \(stats.indexEntries)
            file size:      \(stats.fileSize) bytes
            map size:       \(stats.mapSize) bytes
            """)
    }
}

struct LogVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every record's checksum, the gapless positions, the hash chain and the index entry counts.",
        discussion: "Exits 0 when the log is sound, 1 naming the first bad position otherwise.")
    @OptionGroup var options: DataOption

    func run() throws {
        let report: VerificationReport
        do {
            report = try reportingErrors { try EventLog.openReadOnly(at: options.data).verify() }
        }
        if let problem = report.problem {
            let place = problem.position.map { "at position \($0): " } ?? ""
            print("CORRUPT \(place)\(problem.reason) (\(report.eventsChecked) events checked)")
            throw ExitCode.failure
        }
        guard report.eventsChecked > 0 else {
            print("ok: the log is empty")
            return
        }
        print("ok: \(report.eventsChecked) events, positions 1…\(report.lastPosition) gapless, checksums, hash chain and index counts sound")
        print("head: \(report.headHash)")
    }
}

struct LogDump: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump", abstract: "Print events as CloudEvents 1.0 JSON, one per line.")
    @OptionGroup var options: DataOption
    @Option(name: .customLong("run"), help: "Only the events of this run.") var runID: String?
    @Option(help: "Start at this position.") var from: UInt64 = 1
    @Option(help: "Print at most this many events.") var limit: Int = .max

    func run() throws {
        try reportingErrors {
            let log = try EventLog.openReadOnly(at: options.data)
            let source = log.cloudEventSource
            if let runID {
                for event in try log.events(inRun: runID, from: from, limit: limit) {
                    print(event.cloudEventJSON(source: source))
                }
            } else {
                var printed = 0
                try log.forEachEvent(from: from) { event in
                    guard printed < limit else { return false }
                    print(event.cloudEventJSON(source: source))
                    printed += 1
                    return printed < limit
                }
            }
        }
    }
}
