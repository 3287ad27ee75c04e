// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import Switchboard

/// Replay reads every router payload with this reader, so strings must end exactly where JSON
/// says, whatever escapes they hold, and anything not of the router's shape must be refused.
@Suite struct FlatJSONTests {
    private func parse(_ text: String) -> FlatJSON? { FlatJSON(Array(text.utf8)) }

    @Test func readsStringsNumbersAndBase64Arrays() throws {
        let json = try #require(parse(#"{"service":"echo","attempt":2, "body":["AAE=", "Ag=="],"empty":[]}"#))
        #expect(json.strings == ["service": "echo", "attempt": "2"])
        #expect(json.arrays == ["body": [[0, 1], [2]], "empty": []])
    }

    @Test(arguments: [
        (#"{"a":"x\"y","b":"z"}"#, "x\"y"),
        (#"{"a":"x\\","b":"z"}"#, "x\\"),
        (#"{"a":"x\\\"","b":"z"}"#, "x\\\""),
        (#"{"a":"\\\\","b":"z"}"#, "\\\\"),
        (#"{"a":"\"","b":"z"}"#, "\""),
        (#"{"a":"","b":"z"}"#, ""),
    ])
    func stringsEndAtTheirFirstUnescapedQuote(text: String, value: String) throws {
        let json = try #require(parse(text))
        #expect(json.strings["a"] == value)
        #expect(json.strings["b"] == "z")
    }

    @Test(arguments: [
        #"{"a":"x"#, #"{"a":"x\"}"#, #"{"a" "x"}"#, #"{"a":["AA=="}"#, #"{"a":"x",}"#,
        #"{"body":["AA==",1]}"#, #"{"body":["A"]}"#, #"["a"]"#, "",
    ])
    func refusesWhatIsNotAFlatObject(text: String) {
        #expect(parse(text) == nil)
    }
}
