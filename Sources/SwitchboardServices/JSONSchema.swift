// SPDX-License-Identifier: Apache-2.0

/// A JSON Schema (the subset tool inputs use) that checks values and says where they fail.
///
/// Understood: `type` (a name or a list), `properties`, `required`, `additionalProperties` (true,
/// false or a schema), `items`, `enum`, `const`, `minimum`, `maximum`, `exclusiveMinimum`,
/// `exclusiveMaximum`, `minLength`, `maxLength`, `pattern`, `minItems`, `maxItems`, `allOf`,
/// `anyOf`, `oneOf`, `not`. Other keywords (`description`, `title`, `format`, `$schema`, …) are
/// ignored, so a stricter schema is never rejected, only checked less strictly.
public struct JSONSchema: Sendable, Hashable {
    public let schema: JSONValue

    public init(_ schema: JSONValue) {
        self.schema = schema
    }

    /// Every violation, as `path: problem` with a JSON Pointer path; empty when `value` is valid.
    public func violations(of value: JSONValue) -> [String] {
        var problems: [String] = []
        Self.check(value, against: schema, at: "", into: &problems)
        return problems
    }

    private static func check(_ value: JSONValue, against schema: JSONValue, at path: String,
                              into problems: inout [String]) {
        if schema == .bool(true) { return }
        if schema == .bool(false) { return problems.append("\(where_(path)): no value is allowed here") }
        guard let rules = schema.objectValue else { return }
        let here = where_(path)

        if let type = rules["type"] {
            let names = type.arrayValue?.compactMap(\.stringValue) ?? [type.stringValue].compactMap { $0 }
            if !names.isEmpty, !names.contains(where: { matches(value, type: $0) }) {
                problems.append("\(here): expected \(names.joined(separator: " or ")), got \(typeName(value))")
                return
            }
        }
        if let options = rules["enum"]?.arrayValue, !options.contains(where: { same($0, value) }) {
            problems.append("\(here): expected one of \(options.map(\.text).joined(separator: ", ")), got \(value.text)")
        }
        if let constant = rules["const"], !same(constant, value) {
            problems.append("\(here): expected \(constant.text), got \(value.text)")
        }
        switch value {
        case .object(let object):
            let properties = rules["properties"]?.objectValue ?? [:]
            for name in rules["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where object[name] == nil {
                problems.append("\(here): missing required property \"\(name)\"")
            }
            for (name, member) in object.sorted(by: { $0.key < $1.key }) {
                let memberPath = path + "/" + name
                if let propertySchema = properties[name] {
                    check(member, against: propertySchema, at: memberPath, into: &problems)
                } else if let additional = rules["additionalProperties"], rules["patternProperties"] == nil {
                    if additional == .bool(false) {
                        problems.append("\(here): unexpected property \"\(name)\"")
                    } else {
                        check(member, against: additional, at: memberPath, into: &problems)
                    }
                }
            }
        case .array(let items):
            if let minimum = rules["minItems"]?.intValue, items.count < minimum {
                problems.append("\(here): expected at least \(minimum) items, got \(items.count)")
            }
            if let maximum = rules["maxItems"]?.intValue, items.count > maximum {
                problems.append("\(here): expected at most \(maximum) items, got \(items.count)")
            }
            if let itemSchema = rules["items"] {
                for (index, item) in items.enumerated() {
                    check(item, against: itemSchema, at: path + "/\(index)", into: &problems)
                }
            }
        case .string(let text):
            // JSON Schema counts code points, not grapheme clusters.
            let length = text.unicodeScalars.count
            if let minimum = rules["minLength"]?.intValue, length < minimum {
                problems.append("\(here): expected at least \(minimum) characters, got \(length)")
            }
            if let maximum = rules["maxLength"]?.intValue, length > maximum {
                problems.append("\(here): expected at most \(maximum) characters, got \(length)")
            }
            // A pattern this engine cannot compile is not checked, rather than failing every input.
            if let pattern = rules["pattern"]?.stringValue, let regex = try? Regex(pattern),
               (try? regex.firstMatch(in: text)) == nil {
                problems.append("\(here): does not match the pattern \(pattern)")
            }
        case .integer, .number:
            let number = value.doubleValue ?? 0
            if let minimum = rules["minimum"]?.doubleValue, number < minimum {
                problems.append("\(here): expected at least \(format(minimum)), got \(value.text)")
            }
            if let maximum = rules["maximum"]?.doubleValue, number > maximum {
                problems.append("\(here): expected at most \(format(maximum)), got \(value.text)")
            }
            if let bound = rules["exclusiveMinimum"]?.doubleValue, number <= bound {
                problems.append("\(here): expected more than \(format(bound)), got \(value.text)")
            }
            if let bound = rules["exclusiveMaximum"]?.doubleValue, number >= bound {
                problems.append("\(here): expected less than \(format(bound)), got \(value.text)")
            }
        default:
            break
        }
        for member in rules["allOf"]?.arrayValue ?? [] {
            check(value, against: member, at: path, into: &problems)
        }
        if let options = rules["anyOf"]?.arrayValue, !options.isEmpty,
           !options.contains(where: { JSONSchema($0).violations(of: value).isEmpty }) {
            problems.append("\(here): matches none of the anyOf schemas")
        }
        if let options = rules["oneOf"]?.arrayValue, !options.isEmpty {
            let matching = options.filter { JSONSchema($0).violations(of: value).isEmpty }.count
            if matching != 1 { problems.append("\(here): matches \(matching) of the oneOf schemas, not exactly one") }
        }
        if let excluded = rules["not"], JSONSchema(excluded).violations(of: value).isEmpty {
            problems.append("\(here): matches a schema it must not match")
        }
    }

    private static func where_(_ path: String) -> String { path.isEmpty ? "input" : "input" + path }

    private static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object): true
        case ("integer", .integer), ("number", .integer), ("number", .number): true
        case ("integer", .number(let number)): number.rounded() == number
        default: false
        }
    }

    private static func typeName(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "boolean"
        case .integer: "integer"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// 1 and 1.0 are the same number in JSON.
    private static func same(_ left: JSONValue, _ right: JSONValue) -> Bool {
        if let a = left.doubleValue, let b = right.doubleValue { return a == b }
        return left == right
    }

    private static func format(_ number: Double) -> String {
        number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}
