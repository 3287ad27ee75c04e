// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import SwitchboardServices

/// A workflow graph, as a JSON file declares it (docs/workflows.md).
///
/// Steps are named; each does one thing: `ask` a service, run `parallel` ask steps and join
/// them, wait for an `approval`, or `wait` on a durable timer. `next` names the following step,
/// or lists edges whose `when` conditions are tried in order. A step reached more than
/// `maxVisits` times goes to `onExhausted`, or fails the run.
public struct WorkflowDefinition: Codable, Sendable, Hashable {
    public var name: String
    public var version: String?
    public var start: String
    public var steps: [String: Step]
    /// The run's result, a template; the last step's result when absent.
    public var output: JSONValue?
    public var onFailure: FailureStrategy?
    /// The retry policy of ask steps that set none.
    public var retry: RetryPolicy?
    /// One circuit breaker per service asked, with these settings; none when absent.
    public var breaker: BreakerSettings?

    public enum FailureStrategy: String, Codable, Sendable, Hashable {
        /// Fail the run.
        case abort
        /// Ask a human: approve to retry the step, reject to fail the run.
        case wait
        /// Call the compensations of completed steps, newest first, then fail the run.
        case rollback
    }

    public struct RetryPolicy: Codable, Sendable, Hashable {
        /// Attempts in all, the first included.
        public var attempts: Int
        public var backoffMs: Int?
        public var multiplier: Double?
        public var maxBackoffMs: Int?

        public init(attempts: Int, backoffMs: Int? = nil, multiplier: Double? = nil, maxBackoffMs: Int? = nil) {
            self.attempts = attempts
            self.backoffMs = backoffMs
            self.multiplier = multiplier
            self.maxBackoffMs = maxBackoffMs
        }

        /// The wait before attempt `attempt + 1`, in milliseconds.
        func delay(after attempt: Int) -> Int64 {
            let base = Double(max(0, backoffMs ?? 100))
            var grown = base
            for _ in 1..<max(1, attempt) { grown *= max(1, multiplier ?? 2) }
            return Int64(min(grown, Double(max(0, maxBackoffMs ?? 60_000))))
        }
    }

    public struct BreakerSettings: Codable, Sendable, Hashable {
        /// Consecutive failures that open the circuit.
        public var failures: Int
        /// How long it stays open before one trial call is let through (half-open).
        public var coolDownMs: Int
    }

    public struct Step: Codable, Sendable, Hashable {
        public var ask: String?
        /// The message asked, a template.
        public var input: JSONValue?
        public var parallel: [String]?
        public var approval: Approval?
        public var wait: Wait?
        public var next: Next?
        public var retry: RetryPolicy?
        public var maxVisits: Int?
        public var onExhausted: String?
        /// Where to go when a human rejects an approval step; the run fails when absent.
        public var onReject: String?
        /// Undoes this step on rollback: a service and a template input.
        public var compensate: Compensate?

        public init(ask: String? = nil, input: JSONValue? = nil, parallel: [String]? = nil, approval: Approval? = nil,
                    wait: Wait? = nil, next: Next? = nil, retry: RetryPolicy? = nil, maxVisits: Int? = nil,
                    onExhausted: String? = nil, onReject: String? = nil, compensate: Compensate? = nil) {
            self.ask = ask
            self.input = input
            self.parallel = parallel
            self.approval = approval
            self.wait = wait
            self.next = next
            self.retry = retry
            self.maxVisits = maxVisits
            self.onExhausted = onExhausted
            self.onReject = onReject
            self.compensate = compensate
        }

        var kind: String {
            if ask != nil { return "ask" }
            if parallel != nil { return "parallel" }
            if approval != nil { return "approval" }
            return "wait"
        }
    }

    public struct Approval: Codable, Sendable, Hashable {
        public var title: String
        public var details: JSONValue?
    }

    public struct Wait: Codable, Sendable, Hashable {
        public var delayMs: Int64
    }

    public struct Compensate: Codable, Sendable, Hashable {
        public var ask: String
        public var input: JSONValue?
    }

    /// A step name, or edges tried in order (an edge without `when` always matches).
    public enum Next: Codable, Sendable, Hashable {
        case step(String)
        case edges([Edge])

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let name = try? container.decode(String.self) {
                self = .step(name)
            } else {
                self = .edges(try container.decode([Edge].self))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .step(let name): try container.encode(name)
            case .edges(let edges): try container.encode(edges)
            }
        }

        var targets: [String] {
            switch self {
            case .step(let name): [name]
            case .edges(let edges): edges.map(\.to)
            }
        }
    }

    public struct Edge: Codable, Sendable, Hashable {
        public var when: Condition?
        public var to: String
    }

    /// `path` is a reference such as `$steps.review.verdict`; with neither `equals` nor
    /// `notEquals`, the condition holds when the value exists and is not null or false.
    public struct Condition: Codable, Sendable, Hashable {
        public var path: String
        public var equals: JSONValue?
        public var notEquals: JSONValue?

        var label: String {
            if let equals { return "\(path) == \(equals.text)" }
            if let notEquals { return "\(path) != \(notEquals.text)" }
            return path
        }
    }

    /// The name that ends a run when used as a target.
    public static let end = "end"

    /// Parses and validates a definition.
    public static func load(json bytes: [UInt8], source: String = "workflow") throws -> WorkflowDefinition {
        let definition: WorkflowDefinition
        do {
            definition = try JSONDecoder().decode(WorkflowDefinition.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw WorkflowError("\(source): \(DecodingProblem.describe(error))")
        } catch {
            throw WorkflowError("\(source) is not JSON: \(error)")
        }
        try definition.validate()
        return definition
    }

    /// Reads a definition file.
    public static func load(path: String) throws -> WorkflowDefinition {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WorkflowError("cannot read workflow file \(path)")
        }
        return try load(json: Array(data), source: path)
    }

    /// Throws naming the first problem: unknown targets, steps of no or several kinds, bad bounds.
    public func validate() throws {
        guard !name.isEmpty else { throw WorkflowError("the workflow has no name") }
        guard steps[start] != nil else { throw WorkflowError("start step \(start) is not among the steps") }
        for (name, step) in steps.sorted(by: { $0.key < $1.key }) {
            guard name != Self.end, !name.isEmpty,
                  name.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" })
            else { throw WorkflowError("step name \"\(name)\" is invalid: letters, digits, _ and - only, not \"end\"") }
            let kinds = [step.ask != nil, step.parallel != nil, step.approval != nil, step.wait != nil].filter { $0 }
            guard kinds.count == 1 else {
                throw WorkflowError("step \(name) must have exactly one of ask, parallel, approval, wait")
            }
            for target in (step.next?.targets ?? []) + [step.onExhausted, step.onReject].compactMap({ $0 })
            where target != Self.end && steps[target] == nil {
                throw WorkflowError("step \(name) goes to \(target), which is not a step")
            }
            if let branches = step.parallel {
                guard !branches.isEmpty else { throw WorkflowError("parallel step \(name) has no branches") }
                for branch in branches {
                    guard let target = steps[branch], target.ask != nil else {
                        throw WorkflowError("parallel step \(name): branch \(branch) must be an ask step")
                    }
                }
            }
            if let visits = step.maxVisits, visits < 1 { throw WorkflowError("step \(name): maxVisits must be 1 or more") }
            if let retry = step.retry ?? self.retry, !(1...100).contains(retry.attempts) {
                throw WorkflowError("step \(name): retry attempts must be 1 to 100")
            }
            if let wait = step.wait, !(0...2_592_000_000).contains(wait.delayMs) {
                throw WorkflowError("step \(name): wait delayMs must be 0 to 30 days")
            }
        }
        if let breaker, breaker.failures < 1 || breaker.coolDownMs < 0 {
            throw WorkflowError("breaker needs failures ≥ 1 and coolDownMs ≥ 0")
        }
    }

    /// The graph as a Mermaid flowchart.
    public func mermaid() -> String {
        var lines = ["flowchart TD", "  start((start)) --> \(Self.node(start))"]
        var ended = false
        func label(_ text: String) -> String {
            text.replacingOccurrences(of: "\"", with: "#quot;")
        }
        func edge(_ from: String, _ to: String, _ text: String? = nil) {
            let target = to == Self.end ? "finish" : Self.node(to)
            if to == Self.end { ended = true }
            lines.append("  \(from) -->" + (text.map { "|\"\(label($0))\"|" } ?? "") + " \(target)")
        }
        let branchSteps = Set(steps.values.flatMap { $0.parallel ?? [] })
        for (name, step) in steps.sorted(by: { $0.key < $1.key }) {
            let node = Self.node(name)
            switch step.kind {
            case "ask": lines.append("  \(node)[\"\(label(name))<br/>ask \(label(step.ask ?? ""))\"]")
            case "parallel": lines.append("  \(node)[/\"\(label(name))<br/>parallel\"/]")
            case "approval": lines.append("  \(node){{\"\(label(name))<br/>approval\"}}")
            default: lines.append("  \(node)([\"\(label(name))<br/>wait \(step.wait?.delayMs ?? 0) ms\"])")
            }
            var from = node
            if let branches = step.parallel {
                let join = node + "_join"
                lines.append("  \(join)((join))")
                for branch in branches {
                    lines.append("  \(node) --> \(Self.node(branch))")
                    lines.append("  \(Self.node(branch)) --> \(join)")
                }
                from = join
            }
            if branchSteps.contains(name) && step.next == nil { continue }
            switch step.next {
            case .step(let target): edge(from, target)
            case .edges(let edges):
                for item in edges { edge(from, item.to, item.when?.label ?? "otherwise") }
            case nil: edge(from, Self.end)
            }
            if let target = step.onExhausted { edge(from, target, "after \(step.maxVisits ?? 10) visits") }
            if let target = step.onReject { edge(from, target, "rejected") }
        }
        if ended { lines.append("  finish((end))") }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func node(_ name: String) -> String {
        "s_" + String(name.unicodeScalars.map { $0.properties.isAlphabetic || ("0"..."9").contains($0) ? Character($0) : "_" })
    }
}

/// A workflow definition that cannot run, or a run that failed.
public struct WorkflowError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Fills `$input…`, `$steps.NAME…`, `$visits.NAME` and `$run` references, and `${…}` inside longer strings.
struct TemplateScope {
    var input: JSONValue
    var steps: [String: JSONValue]
    var runID: String
    var visits: [String: Int] = [:]

    func resolve(_ template: JSONValue) -> JSONValue {
        switch template {
        case .string(let text):
            if text.hasPrefix("$"), !text.hasPrefix("${"), !text.contains(" ") {
                // A reference to something not there yet (a step not run) is null.
                return lookup(text) ?? .null
            }
            guard text.contains("${") else { return template }
            return .string(interpolate(text))
        case .array(let items): return .array(items.map(resolve))
        case .object(let members): return .object(members.mapValues(resolve))
        default: return template
        }
    }

    /// The value a reference names; nil when it names nothing.
    func lookup(_ reference: String) -> JSONValue? {
        var parts = reference.dropFirst().split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let head = parts.first else { return nil }
        parts.removeFirst()
        var value: JSONValue
        switch head {
        case "input": value = input
        case "run": return .string(runID)
        case "visits":
            return parts.count == 1 ? .integer(Int64(visits[parts[0], default: 0])) : nil
        case "steps":
            guard !parts.isEmpty, let result = steps[parts.removeFirst()] else { return nil }
            value = result
        default: return nil
        }
        for part in parts {
            if let index = Int(part), case .array(let items) = value {
                guard items.indices.contains(index) else { return nil }
                value = items[index]
            } else if case .object(let members) = value, let member = members[part] {
                value = member
            } else {
                return nil
            }
        }
        return value
    }

    private func interpolate(_ text: String) -> String {
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                out += rest[open.lowerBound...]
                return out
            }
            let reference = "$" + rest[open.upperBound..<close]
            switch lookup(reference) {
            case .string(let value): out += value
            case let value?: out += value.text
            case nil: out += ""
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    func holds(_ condition: WorkflowDefinition.Condition) -> Bool {
        let value = lookup(condition.path)
        if let expected = condition.equals { return value == expected }
        if let unexpected = condition.notEquals { return value != unexpected }
        switch value {
        case nil, .null?, .bool(false)?: return false
        default: return true
        }
    }
}
