// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import TestSupport

/// `switchboard demo` as a newcomer runs it, then `replay`, `runs`, `show`, `approvals list` and
/// `workflow render` on what it left.
@Suite(.serialized) struct DemoProcessTests {
    func demo(model: String) async throws {
        try await withTemporaryDirectory { directory in
            let data = directory + "/data"
            let demo = try await runProduct("switchboard", ["demo", "--model", model, "--yes", "--data", data])
            #expect(demo.status == 0, "demo failed: \(demo.output)\n\(demo.error)")
            // The scripted model always plans a note, which the demo policy sends to a human; a real model may not.
            if model == "scripted" { #expect(demo.output.contains("approval.requested")) }
            #expect(demo.output.contains("replay: identical"))
            let runLine = try #require(demo.output.split(separator: "\n").first { $0.hasPrefix("run run-") })
            let runID = String(runLine.dropFirst(4))
            #expect(demo.output.contains("run.completed"))
            #expect(demo.output.contains("tool.time."))

            let replay = try await runProduct("switchboard", ["replay", runID, "--data", data])
            #expect(replay.status == 0 && replay.output.hasPrefix("identical"), "\(replay.output)\(replay.error)")
            let runs = try await runProduct("switchboard", ["runs", "--data", data])
            #expect(runs.output.contains("\(runID)  completed"))
            let show = try await runProduct("switchboard", ["show", runID, "--data", data])
            #expect(show.status == 0)
            for expected in ["run \(runID): completed", "step.completed", "policy.decided", "lock:", "planner  version 1.0",
                             "usage: "] {
                #expect(show.output.contains(expected), "show lacks \(expected): \(show.output)")
            }
            guard model == "scripted" else { return }
            #expect(show.output.contains("approved  policy  executor → tool.notes.write"))
            let approvals = try await runProduct("switchboard", ["approvals", "list", "--data", data, "--all"])
            #expect(approvals.output.contains("executor → tool.notes.write"))
            #expect(FileManager.default.fileExists(atPath: data + "/notes/time-check.md"))
        }
    }

    @Test func scriptedDemoRunsAndReplaysIdentical() async throws {
        try await demo(model: "scripted")
    }

    /// The real local model of scripts/local-llm.sh, which scripts/test.sh starts.
    @Test func localModelDemoRunsAndReplaysIdentical() async throws {
        let port = ProcessInfo.processInfo.environment["SWITCHBOARD_LLM_PORT"] ?? "8077"
        let probe = try await runProduct("switchboard", ["demo", "--help"])
        #expect(probe.status == 0 && probe.output.contains("--model"))
        try #require(FileManager.default.fileExists(atPath: "/proc/net/tcp"))
        let listening = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8))?
            .contains(String(format: ":%04X ", Int(port) ?? 8077)) ?? false
        try #require(listening, "no local model on port \(port): run scripts/local-llm.sh setup && start")
        try await demo(model: "local")
    }

    @Test func workflowRenderAndBadFiles() async throws {
        let render = try await runProduct("switchboard", ["workflow", "render", "plan-critic-execute"])
        #expect(render.status == 0 && render.output.hasPrefix("flowchart TD"))
        #expect(render.output.contains("s_plan --> s_review"))
        try await withTemporaryDirectory { directory in
            let file = directory + "/bad.json"
            try #"{"name": "x", "start": "a", "steps": {"a": {"ask": "echo", "next": "b"}}}"#
                .write(toFile: file, atomically: true, encoding: .utf8)
            let bad = try await runProduct("switchboard", ["workflow", "validate", file])
            #expect(bad.status != 0 && bad.error.contains("step a goes to b, which is not a step"))
            let policy = directory + "/policy.json"
            try #"{"rules": [{"service": "x", "decision": "maybe"}]}"#.write(toFile: policy, atomically: true, encoding: .utf8)
            let refused = try await runProduct("switchboard", ["router", "--data", directory + "/d", "--bind", "tcp://127.0.0.1:*",
                                                         "--policy", policy])
            #expect(refused.status != 0 && refused.error.contains("policy file"))
        }
    }
}
