// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import TestSupport
import Switchboard
import SwitchboardLog
import SwitchboardServices

/// Asks the model which timezone to look up, then asks the time tool, and records both.
actor Assistant: Agent {
    static let descriptor = AgentDescriptor(name: "assistant", version: "1")
    var state = NoState()
    init(id: AgentID) {}

    func handle(_ message: AgentMessage, context: AgentContext<Assistant>) async throws -> Payload {
        let question = LLMRequest(messages: [.init(role: "user", content: "time in Tokyo script:ok")], stream: true)
        let answer = try await context.ask("llm.fake", try Payload(json: question)).decode(LLMReply.self)
        let time = try await context.ask("tool.time.get_current_time", Payload(text: #"{"timezone":"Asia/Tokyo"}"#))
        return try Payload(json: ["model": .string(answer.content), "tool": try JSONValue(parsing: time.bytes)]
                           as [String: JSONValue])
    }
}

@Suite struct ServiceReplayTests {
    @Test func runThatUsedTheModelAndAToolReplaysWithBothStopped() async throws {
        try await withTemporaryDirectory { directory in
            let provider = try FakeProvider(directory: directory)
            let server = try await MCPToolServer.connect(timeServer())
            let client = HTTPClient()
            let types = [AgentType(Assistant.self), LLMGateway.agentType(provider.configuration(), client: client)]
                + server.agentTypes
            let embedded = try Embedded(directory: directory + "/data", types: types)
            let results = try await embedded.serving { embedded in
                try await embedded.runs("assistant", inputs: [Payload(text: "{}")])
            }
            let result = try #require(results.first)
            #expect(result.error == nil)
            let log = embedded.router.router.log
            try embedded.router.stop()
            // Nothing the replay could call is left running.
            provider.process.kill()
            await server.shutdown()
            client.shutdown()

            let reply = try JSONValue(parsing: result.payload.bytes)
            #expect(reply["model"] == "echo: time in Tokyo script:ok")
            #expect(reply["tool"]?["output"]?["timezone"] == "Asia/Tokyo")
            let lock = try Replayer.lock(of: result.runID, in: log)
            #expect(Set(lock.map(\.service)) == ["assistant", "llm.fake", "tool.time.get_current_time"])

            let report = try await Replayer.replay(run: result.runID, log: log, types: [AgentType(Assistant.self)])
            #expect(report.exitCode == 0, "\(String(describing: report.divergence))")
            #expect(report.stepsChecked >= 3)
        }
    }
}
