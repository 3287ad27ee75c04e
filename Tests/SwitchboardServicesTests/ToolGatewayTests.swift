// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import TestSupport
import Switchboard
import SwitchboardLog
import SwitchboardServices

/// `mcp-server-time` from PyPI, installed by scripts/python-env.sh.
func timeServer() -> MCPServerConfiguration {
    MCPServerConfiguration(
        name: "time",
        transport: .stdio(command: testVenv + "/bin/mcp-server-time", arguments: ["--local-timezone", "UTC"],
                          environment: nil))
}

/// An MCP server whose `record` tool answers with the `_meta` it received.
let metaServerScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Python/meta_mcp_server.py").path

/// Runs `inputs` against `service` on an embedded router and host serving `types`.
func runTools(_ types: [AgentType], _ service: String, _ inputs: [String], directory: String) async throws
    -> (results: [RunClient.Result], log: EventLog)
{
    let embedded = try Embedded(directory: directory, types: types)
    let results = try await embedded.serving { embedded in
        try await embedded.runs(service, inputs: inputs.map { Payload(text: $0) })
    }
    let log = embedded.router.router.log
    try embedded.router.stop()
    return (results, log)
}

private let addSchema: JSONValue = [
    "type": "object", "required": ["a", "b"], "additionalProperties": false,
    "properties": ["a": ["type": "integer"], "b": ["type": "integer", "minimum": 0]],
]

@Suite struct ToolGatewayTests {
    @Test func nativeToolAnswersAuditsAndDeclaresItsCompensation() async throws {
        try await withTemporaryDirectory { directory in
            let keys = Mutex<[String]>([])
            let add = NativeTool(
                name: "math.add", description: "Adds", inputSchema: addSchema,
                compensation: { call, output in Compensation(service: "tool.math.subtract", input: ["total": output,
                                                                                                     "b": call.input["b"] ?? 0]) }
            ) { call in
                keys.withLock { $0.append(call.idempotencyKey) }
                return .integer((call.input["a"]?.intValue ?? 0) + (call.input["b"]?.intValue ?? 0))
            }
            let (results, log) = try await runTools([ToolGateway.agentType(add)], "tool.math.add",
                                                    [#"{"a":2,"b":3}"#], directory: directory)
            let result = try #require(results.first)
            #expect(result.payload.text
                == #"{"compensation":{"input":{"b":3,"total":5},"service":"tool.math.subtract"},"output":5}"#)
            let events = try log.events(inRun: result.runID)
            let audit = try decoded(ToolEvent.self, try #require(events.first { $0.type == "tool.executed" }))
            #expect(audit.tool == "tool.math.add" && audit.outcome == "ok")
            #expect(audit.input == ["a": 2, "b": 3] && audit.output == 5)
            #expect(audit.compensation?.service == "tool.math.subtract")
            // The idempotency key is the ask's message id, the one the router logged.
            let received = try #require(events.first { $0.type == "request.received" })
            #expect(keys.withLock { $0 } == [received.messageID])
            #expect(audit.idempotencyKey == received.messageID)
        }
    }

    @Test func invalidInputIsRefusedWithItsPathAndAudited() async throws {
        try await withTemporaryDirectory { directory in
            let calls = Mutex(0)
            let add = NativeTool(name: "math.add", description: "Adds", inputSchema: addSchema) { _ in
                calls.withLock { $0 += 1 }
                return 0
            }
            let failing = NativeTool(name: "broken", description: "Fails", inputSchema: ["type": "object"]) { _ in
                throw AskError(service: "broken", code: "disk_full", message: "no space left")
            }
            let (results, log) = try await runTools(
                [ToolGateway.agentType(add)], "tool.math.add",
                [#"{"a":"two","b":3}"#, #"{"a":1,"b":-1,"c":0}"#, "not json"], directory: directory + "/a")
            let messages = results.compactMap(\.error).sorted { $0.message < $1.message }
            #expect(results.allSatisfy { $0.error?.code == "invalid_input" })
            #expect(messages.map(\.message) == [
                "the input does not match the tool's schema: input/a: expected integer, got string",
                "the input does not match the tool's schema: input/b: expected at least 0, got -1; "
                    + "input: unexpected property \"c\"",
                "the input is not JSON",
            ])
            #expect(calls.withLock { $0 } == 0)
            let audits = try log.events().filter { $0.type == "tool.executed" }
            #expect(try audits.map { try decoded(ToolEvent.self, $0).outcome } == Array(repeating: "invalid_input", count: 3))

            let (failed, _) = try await runTools([ToolGateway.agentType(failing)], "tool.broken", ["{}"],
                                                 directory: directory + "/b")
            #expect(failed.first?.error == AskError(service: "tool.broken", code: "disk_full", message: "no space left"))
        }
    }

    @Test func mcpServerToolsBecomeServices() async throws {
        try await withTemporaryDirectory { directory in
            let server = try await MCPToolServer.connect(timeServer())
            #expect(Set(server.tools.map(\.name)) == ["get_current_time", "convert_time"])
            #expect(server.serverName == "mcp-time")
            let types = server.agentTypes
            #expect(Set(types.map(\.descriptor.name)) == ["tool.time.get_current_time", "tool.time.convert_time"])
            let (results, log) = try await runTools(
                types, "tool.time.convert_time",
                [#"{"source_timezone":"UTC","time":"12:00","target_timezone":"Asia/Tokyo"}"#,
                 #"{"source_timezone":"UTC","time":"12:00"}"#,
                 #"{"source_timezone":"Mars/Olympus","time":"12:00","target_timezone":"UTC"}"#],
                directory: directory)
            await server.shutdown()

            let converted = try #require(results.first { $0.error == nil })
            let output = try #require(try JSONValue(parsing: converted.payload.bytes)["output"])
            #expect(output["target"]?["timezone"] == "Asia/Tokyo")
            #expect(output["target"]?["datetime"]?.stringValue?.contains("T21:00:00") == true)
            let errors = results.compactMap(\.error)
            #expect(errors.map(\.code).sorted() == ["invalid_input", "tool_error"])
            #expect(errors.contains { $0.message.contains("missing required property \"target_timezone\"") })
            #expect(errors.contains { $0.message.contains("Mars/Olympus") })

            let events = try log.events(inRun: converted.runID)
            let audit = try decoded(ToolEvent.self, try #require(events.first { $0.type == "tool.executed" }))
            #expect(audit.outcome == "ok" && audit.output == output)
            let lock = try #require(events.first { $0.type == "lock.recorded" })
            #expect(String(decoding: lock.payload, as: UTF8.self).contains("mcp:mcp-time@\(server.serverVersion)"))
        }
    }

    @Test func aServerThatCannotStartIsAClearError() async throws {
        let missing = MCPServerConfiguration(name: "gone", transport: .stdio(command: "/nonexistent/mcp-server",
                                                                              arguments: [], environment: nil))
        let error = await #expect(throws: MCPToolServerError.self) { try await MCPToolServer.connect(missing) }
        #expect(error?.description.contains("cannot start /nonexistent/mcp-server") == true)
    }

    @Test(arguments: ["stdio", "http"])
    func mcpCallsCarryTheAskIdAsIdempotencyKey(transport: String) async throws {
        try await withTemporaryDirectory { directory in
            var httpServer: ChildProcess?
            defer { httpServer?.kill() }
            let configuration: MCPServerConfiguration
            if transport == "http" {
                let port = Int.random(in: 41000...48999)
                httpServer = try ChildProcess(URL(fileURLWithPath: testVenv + "/bin/python"),
                                              [metaServerScript, "http", String(port)])
                configuration = MCPServerConfiguration(name: "meta", transport: .http(url: "http://127.0.0.1:\(port)/mcp"),
                                                       callTimeout: 5000)
            } else {
                configuration = MCPServerConfiguration(
                    name: "meta", transport: .stdio(command: testVenv + "/bin/python", arguments: [metaServerScript],
                                                    environment: nil))
            }
            // The HTTP server needs a moment to listen: connect until it answers.
            var server: MCPToolServer?
            for _ in 0..<100 where server == nil {
                server = try? await MCPToolServer.connect(configuration)
                if server == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let connected = try #require(server, "\(transport) MCP server did not answer")
            #expect(connected.serverName == "switchboard-test-tools")
            let (results, log) = try await runTools(connected.agentTypes, "tool.meta.record", [#"{"note":"n1"}"#],
                                                    directory: directory)
            await connected.shutdown()
            let result = try #require(results.first)
            let output = try #require(try JSONValue(parsing: result.payload.bytes)["output"])
            let received = try #require(try log.events(inRun: result.runID).first { $0.type == "request.received" })
            #expect(output["note"] == "n1")
            #expect(output["meta"]?["idempotencyKey"]?.stringValue == received.messageID)
        }
    }

    @Test func aToolThatDoesNotAnswerTimesOut() async throws {
        try await withTemporaryDirectory { directory in
            let server = try await MCPToolServer.connect(MCPServerConfiguration(
                name: "meta", transport: .stdio(command: testVenv + "/bin/python", arguments: [metaServerScript],
                                                environment: nil),
                callTimeout: 1000))
            let (results, log) = try await runTools(server.agentTypes, "tool.meta.slow", [#"{"seconds":30}"#],
                                                    directory: directory)
            await server.shutdown()
            let error = try #require(results.first?.error)
            #expect(error.code == "timeout" && error.message == "no answer within 1000 ms")
            let audit = try decoded(ToolEvent.self, try #require(try log.events().first { $0.type == "tool.executed" }))
            #expect(audit.outcome == "failed")
        }
    }
}
