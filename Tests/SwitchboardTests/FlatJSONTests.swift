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

/// The counter reads `{"add": n}` without JSONDecoder; anything else must still reach JSONDecoder,
/// so the agent accepts and rejects exactly what it did with JSONDecoder alone.
@Suite struct CounterInputTests {
    @Test(arguments: [(#"{"add":1}"#, 1), (#"{ "add" : -42 }"#, -42), (#"{"add":0}"#, 0),
                      (#"{"add":9223372036854775807}"#, Int.max)])
    func readsAPlainInteger(text: String, amount: Int) {
        #expect(Counter.plainAdd(Array(text.utf8)) == amount)
    }

    @Test(arguments: [#"{"add":"1"}"#, #"{"add":1.5}"#, #"{"add":01}"#, #"{"add":-0}"#, #"{"add":1e2}"#,
                      #"{"add":null}"#, #"{"add":1,"add":2}"#, #"{"more":1,"add":1}"#, #"{"\u0061dd":1}"#,
                      #"{"add":99999999999999999999}"#, #"{}"#, #"{"add":[1]}"#, #"{"add":1"#, "[1]"])
    func leavesEverythingElseToJSONDecoder(text: String) {
        #expect(Counter.plainAdd(Array(text.utf8)) == nil)
    }
}
