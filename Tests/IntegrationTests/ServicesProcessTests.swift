// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import TestSupport

/// `switchboard services` in its own process, between a router process and `switchboard run`.
@Suite struct ServicesProcessTests {
    @Test func keysFromEnvironmentAndFileNeverReachOutputOrLog() async throws {
        try await withTemporaryDirectory { directory in
            let fileKey = "sk-file-key-91be2c55"
            let envKey = "sk-env-key-3d0a7e11"
            let script = repositoryRoot.appendingPathComponent("Tests/SwitchboardServicesTests/Python/fake_provider.py")
            let provider = try ChildProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-u", script.path])
            let portLine = try #require(await provider.waitForLine { $0.hasPrefix("PORT ") })
            let base = "http://127.0.0.1:\(portLine.dropFirst(5))/v1"
            try fileKey.write(toFile: directory + "/key.txt", atomically: true, encoding: .utf8)
            let config = """
                {"llm": [{"name": "fake", "baseURL": "\(base)", "model": "m1", "apiKeyFile": "key.txt",
                          "retry": {"attempts": 2, "initialDelayMs": 10}},
                         {"name": "other", "api": "anthropic", "baseURL": "\(base)", "model": "m2",
                          "apiKeyEnv": "TEST_PROVIDER_KEY"}],
                 "mcp": [{"name": "time", "command": ["\(testVenv)/bin/mcp-server-time"]}]}
                """
            try config.write(toFile: directory + "/services.json", atomically: true, encoding: .utf8)

            let data = directory + "/data"
            let router = try await RouterProcess.start(data: data)
            var environment = ProcessInfo.processInfo.environment
            environment["TEST_PROVIDER_KEY"] = envKey
            let services = try ChildProcess(productsDirectory.appendingPathComponent("switchboard"), [
                "services", "--router", router.endpoint, "--config", directory + "/services.json", "--log-level", "trace",
            ], environment: environment)
            try #require(await services.waitForLine(timeout: 60) { $0.hasPrefix("services ") } != nil,
                         "services did not start: \(services.standardError)")
            #expect(services.standardOutput.contains("llm.fake -> \(base) model m1 (openai, key set)"))

            func run(_ service: String, _ input: String) async throws -> ProcessResult {
                try await runProduct("switchboard", ["run", service, "--input", input, "--router", router.endpoint])
            }
            let answered = try await run("llm.fake", #"{"messages":[{"role":"user","content":"hi script:ok"}]}"#)
            #expect(answered.status == 0 && answered.output.contains(#""content":"echo: hi script:ok""#))
            let refused = try await run("llm.other", #"{"messages":[{"role":"user","content":"who script:unauthorized"}]}"#)
            #expect(refused.status == 1 && refused.output.contains("[redacted]"))
            let also = try await run("llm.fake", #"{"messages":[{"role":"user","content":"me script:unauthorized"}]}"#)
            #expect(also.status == 1 && also.output.contains("provider_auth"))
            let retried = try await run("llm.fake", #"{"messages":[{"role":"user","content":"again script:500-then-ok"}]}"#)
            #expect(retried.status == 0)
            let time = try await run("tool.time.get_current_time", #"{"timezone":"Asia/Tokyo"}"#)
            #expect(time.status == 0 && time.output.contains(#""timezone":"Asia/Tokyo""#))
            let runID = try #require(answered.output.split(separator: "\n").first?.split(separator: " ").last)
            services.kill()
            router.process.kill()
            provider.kill()

            let lock = try await runProduct("switchboard", ["lock", "show", String(runID), "--data", data])
            #expect(lock.output.contains("llm.fake  version llm-gateway/1"))
            #expect(lock.output.contains(#"llm.fake  model m1  parameters {}  template "#))
            let outputs = [services.standardOutput, services.standardError, router.process.standardOutput,
                           router.process.standardError, lock.output] + [answered, refused, also, retried, time].flatMap { [$0.output, $0.error] }
            for key in [fileKey, envKey] {
                #expect(!outputs.contains { $0.contains(key) }, "a process printed \(key)")
                #expect(try files(in: data, containing: key) == [], "these files hold \(key)")
            }
            // Debug logging was on and reported the retry, and the keys still stayed out of it.
            #expect(services.standardError.contains("llm attempt failed; retrying"))
        }
    }
}
