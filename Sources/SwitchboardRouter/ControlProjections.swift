// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import SwitchboardLog

/// A human approval, as the `approvals` projection keeps it.
public struct ApprovalRecord: Sendable, Hashable, Codable {
    public var id: String
    public var runID: String
    /// `step` (a workflow asked `sb.approval`) or `policy` (a rule asked for approval of a request).
    public var kind: String
    /// The service asked: `sb.approval` for a step, the gated service for a policy approval.
    public var service: String
    /// The agent that asked.
    public var agent: String
    public var title: String
    /// JSON text: what the approver is shown.
    public var details: String
    /// The message id of the parked request.
    public var request: String
    /// Nanoseconds since the epoch.
    public var requestedAt: Int64
    /// `pending`, `approved`, `rejected` or `cancelled`.
    public var status: String
    public var note: String?
    public var reason: String?
    public var decidedAt: Int64?
}

/// Every approval ever requested, by id: `approval.requested` adds one as pending,
/// `approval.decided` records its answer.
public struct ApprovalsProjection: Projection {
    public static let name = "approvals"
    public var name: String { Self.name }
    /// 2: only the router's events count (an agent's, in its stream, may have any type).
    public var version: UInt32 { 2 }

    public init() {}

    private struct Requested: Decodable {
        var id: String
        var kind: String
        var service: String
        var agent: String
        var title: String
        var request: String
    }

    private struct Decided: Decodable {
        var id: String
        var status: String
        var note: String?
        var reason: String?
    }

    public func apply(_ events: [RecordedEvent], to state: ProjectionState) throws {
        // Every batch passes here on the log writer's thread; most hold no approval event.
        guard events.indices.contains(where: { events[$0].type.hasPrefix("approval.") }) else { return }
        let decoder = JSONDecoder()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for event in events where event.streamID.isEmpty {
            switch event.type {
            case ControlEvents.approvalRequested:
                guard let requested = try? decoder.decode(Requested.self, from: Data(event.payload)) else { continue }
                let record = ApprovalRecord(
                    id: requested.id, runID: event.runID, kind: requested.kind, service: requested.service,
                    agent: requested.agent, title: requested.title, details: ControlEvents.details(of: event.payload),
                    request: requested.request, requestedAt: event.timestamp.nanosecondsSinceEpoch, status: "pending")
                try state.setValue(Array(try encoder.encode(record)), forKey: Array(requested.id.utf8))
            case ControlEvents.approvalDecided:
                guard let decided = try? decoder.decode(Decided.self, from: Data(event.payload)),
                      let bytes = try state.value(forKey: Array(decided.id.utf8)),
                      var record = try? decoder.decode(ApprovalRecord.self, from: Data(bytes))
                else { continue }
                record.status = decided.status
                record.note = decided.note
                record.reason = decided.reason
                record.decidedAt = event.timestamp.nanosecondsSinceEpoch
                try state.setValue(Array(try encoder.encode(record)), forKey: Array(decided.id.utf8))
            default:
                break
            }
        }
    }

    /// Every approval in the log's projection, oldest first.
    public static func records(in log: EventLog) throws -> [ApprovalRecord] {
        let decoder = JSONDecoder()
        return try log.projectionState(named: name).entries
            .compactMap { try? decoder.decode(ApprovalRecord.self, from: Data($0.value)) }
            .sorted { ($0.requestedAt, $0.id) < ($1.requestedAt, $1.id) }
    }
}

/// What runs and days spent, and how often each policy rule let a run through:
/// `run/<run id>` and `day/<yyyy-mm-dd>` → ``UsageTotals`` from `llm.usage` events;
/// `calls/<rule>/<run id>` → requests a rule let through (decided `allow` or `request_approval`).
public struct UsageProjection: Projection {
    public static let name = "usage"
    public var name: String { Self.name }
    /// 2: `policy.decided` counts only as the router's event (`llm.usage` comes from a service's stream).
    public var version: UInt32 { 2 }

    public init() {}

    public func apply(_ events: [RecordedEvent], to state: ProjectionState) throws {
        // Only matching events are copied out of the array: most of a batch is neither kind.
        for index in events.indices {
            switch events[index].type {
            case ControlEvents.llmUsage:
                let event = events[index]
                guard let usage = UsageTotals(usageEvent: event.payload) else { continue }
                for key in ["run/" + event.runID, "day/" + UsageTotals.day(event.timestamp)] {
                    var totals = try state.value(forKey: Array(key.utf8)).flatMap(UsageTotals.init(encoded:))
                        ?? UsageTotals()
                    totals.add(usage)
                    try state.setValue(totals.encoded(), forKey: Array(key.utf8))
                }
            case ControlEvents.policyDecided where events[index].streamID.isEmpty:
                let event = events[index]
                guard let (rule, counted) = ControlEvents.countedRule(event.payload), counted else { continue }
                let key = Array("calls/\(rule)/\(event.runID)".utf8)
                guard key.count <= 511 else { continue }
                let count = try state.value(forKey: key).flatMap(UsageTotals.decodeCount) ?? 0
                try state.setValue(withUnsafeBytes(of: (count + 1).littleEndian) { Array($0) }, forKey: key)
            default:
                break
            }
        }
    }
}

/// Calls, tokens and cost summed over `llm.usage` events.
public struct UsageTotals: Sendable, Hashable {
    public var calls: UInt64 = 0
    public var promptTokens: UInt64 = 0
    public var completionTokens: UInt64 = 0
    /// In millionths of a USD, so sums are exact.
    public var costMicroUSD: UInt64 = 0

    public init() {}

    public var costUSD: Double { Double(costMicroUSD) / 1_000_000 }

    private struct Event: Decodable {
        struct Usage: Decodable {
            var promptTokens: Int?
            var completionTokens: Int?
            var costUSD: Double?

            enum CodingKeys: String, CodingKey {
                case promptTokens = "prompt_tokens"
                case completionTokens = "completion_tokens"
                case costUSD = "cost_usd"
            }
        }

        var usage: Usage?
    }

    /// The usage an `llm.usage` payload reports.
    init?(usageEvent payload: [UInt8]) {
        guard let usage = (try? JSONDecoder().decode(Event.self, from: Data(payload)))?.usage else { return nil }
        calls = 1
        promptTokens = UInt64(max(0, usage.promptTokens ?? 0))
        completionTokens = UInt64(max(0, usage.completionTokens ?? 0))
        let cost = usage.costUSD ?? 0
        costMicroUSD = cost.isFinite && cost > 0 ? UInt64(min(cost * 1_000_000, 1e15).rounded()) : 0
    }

    mutating func add(_ other: UsageTotals) {
        calls &+= other.calls
        promptTokens &+= other.promptTokens
        completionTokens &+= other.completionTokens
        costMicroUSD &+= other.costMicroUSD
    }

    /// Four u64 little-endian.
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for value in [calls, promptTokens, completionTokens, costMicroUSD] {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        return out
    }

    init?(encoded bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        let values = bytes.withUnsafeBytes { raw in
            (0..<4).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
        }
        (calls, promptTokens, completionTokens, costMicroUSD) = (values[0], values[1], values[2], values[3])
    }

    static func decodeCount(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    /// The UTC day of `timestamp`, `yyyy-mm-dd`.
    public static func day(_ timestamp: Timestamp) -> String {
        String(timestamp.description.prefix(10))
    }

    /// The usage of `runID` from the log's projection.
    public static func ofRun(_ runID: String, in log: EventLog) throws -> UsageTotals {
        try log.projectionValue(named: UsageProjection.name, key: Array("run/\(runID)".utf8))
            .flatMap { UsageTotals(encoded: $0) } ?? UsageTotals()
    }
}
