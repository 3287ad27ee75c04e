// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The router's policy gate: which agent may ask which service, under which limits (docs/policy.md).
///
/// The first rule whose `agent` and `service` patterns match decides; `*` in a pattern matches any
/// run of characters. An agent is the service whose handler sent the request (`client` for a
/// request no agent sent). A rule that allows or asks for approval still denies once one of its
/// limits is reached: calls per run, or cost per run or per day from the `usage` projection.
public struct Policy: Sendable, Hashable, Codable {
    public enum Decision: String, Sendable, Hashable, Codable {
        case allow
        case deny
        case requestApproval = "request_approval"
    }

    public struct Rule: Sendable, Hashable, Codable {
        /// Names the rule in decision events; `rule-N` (1-based) when absent.
        public var name: String?
        /// Pattern for the asking agent; any agent when absent.
        public var agent: String?
        /// Pattern for the service asked.
        public var service: String
        public var decision: Decision
        /// Said in the error reply of a denial.
        public var reason: String?
        /// Requests this rule lets through per run at most.
        public var maxCalls: Int?
        /// USD spent by the run on LLM calls, after which the rule denies.
        public var maxCostPerRun: Double?
        /// USD spent on one UTC day by all runs on LLM calls, after which the rule denies.
        public var maxCostPerDay: Double?

        public init(name: String? = nil, agent: String? = nil, service: String, decision: Decision,
                    reason: String? = nil, maxCalls: Int? = nil, maxCostPerRun: Double? = nil,
                    maxCostPerDay: Double? = nil) {
            self.name = name
            self.agent = agent
            self.service = service
            self.decision = decision
            self.reason = reason
            self.maxCalls = maxCalls
            self.maxCostPerRun = maxCostPerRun
            self.maxCostPerDay = maxCostPerDay
        }

        var hasLimits: Bool { maxCalls != nil || maxCostPerRun != nil || maxCostPerDay != nil }
    }

    /// The decision when no rule matches.
    public var defaultDecision: Decision
    public var rules: [Rule]

    enum CodingKeys: String, CodingKey {
        case defaultDecision = "default"
        case rules
    }

    public init(defaultDecision: Decision = .allow, rules: [Rule]) {
        self.defaultDecision = defaultDecision
        self.rules = rules
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        defaultDecision = try container.decodeIfPresent(Decision.self, forKey: .defaultDecision) ?? .allow
        rules = try container.decodeIfPresent([Rule].self, forKey: .rules) ?? []
    }

    /// Reads and checks a policy file (JSON).
    public static func load(path: String) throws -> Policy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolicyError("cannot read policy file \(path)")
        }
        let policy: Policy
        do {
            policy = try JSONDecoder().decode(Policy.self, from: data)
        } catch let error as DecodingError {
            throw PolicyError("policy file \(path): \(Self.describe(error))")
        }
        try policy.validate()
        return policy
    }

    /// Throws naming the first rule that cannot work.
    public func validate() throws {
        var names = Set<String>()
        for (index, rule) in rules.enumerated() {
            let name = ruleName(index)
            guard names.insert(name).inserted else { throw PolicyError("rule name \(name) is used twice") }
            // The usage projection keys call counts by rule name and run, separated by '/'.
            guard !name.contains("/"), !name.isEmpty else { throw PolicyError("rule name \"\(name)\" must be non-empty, without /") }
            guard !rule.service.isEmpty else { throw PolicyError("rule \(name) has an empty service pattern") }
            if let maxCalls = rule.maxCalls, maxCalls < 0 { throw PolicyError("rule \(name): maxCalls is negative") }
            for (label, limit) in [("maxCostPerRun", rule.maxCostPerRun), ("maxCostPerDay", rule.maxCostPerDay)] {
                if let limit, !(limit.isFinite && limit >= 0) {
                    throw PolicyError("rule \(name): \(label) must be a finite number of USD, 0 or more")
                }
            }
        }
    }

    /// Whether any rule counts calls or spending (the router then tracks usage).
    var hasLimits: Bool { rules.contains(where: \.hasLimits) }

    func ruleName(_ index: Int) -> String {
        rules[index].name ?? "rule-\(index + 1)"
    }

    /// The first rule matching `agent` asking `service`.
    func match(agent: String, service: String) -> Int? {
        rules.firstIndex { Self.glob($0.agent ?? "*", agent) && Self.glob($0.service, service) }
    }

    /// Whether `value` matches `pattern`, where `*` matches any run of characters.
    static func glob(_ pattern: String, _ value: String) -> Bool {
        let pattern = Array(pattern.utf8)
        let value = Array(value.utf8)
        var p = 0
        var v = 0
        var star: Int?
        var mark = 0
        while v < value.count {
            if p < pattern.count && pattern[p] != UInt8(ascii: "*") && pattern[p] == value[v] {
                p += 1
                v += 1
            } else if p < pattern.count && pattern[p] == UInt8(ascii: "*") {
                star = p
                mark = v
                p += 1
            } else if let star {
                p = star + 1
                mark += 1
                v = mark
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "" : " at \(keys.hasPrefix(".") ? String(keys.dropFirst()) : keys)"
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing \(key.stringValue)\(path(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(context.debugDescription)\(path(context))"
        case .dataCorrupted(let context): return "\(context.debugDescription)\(path(context))"
        @unknown default: return "\(error)"
        }
    }
}

/// A policy file that cannot be used.
public struct PolicyError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
