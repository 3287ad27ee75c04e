// SPDX-License-Identifier: Apache-2.0
import SwitchboardServices
import SwitchboardWire
import Testing

/// The C shims link and answer: libzmq with the transports the router will use, libcurl with TLS.
@Suite struct LinkedLibraryTests {
    @Test func zeroMQIsLinkedWithIPCAndCURVE() {
        #expect(ZeroMQ.version.hasPrefix("4."))
        #expect(ZeroMQ.has("ipc"))
        #expect(ZeroMQ.has("curve"))
        #expect(!ZeroMQ.has("no-such-capability"))
    }

    @Test func curlIsLinkedWithOpenSSL() {
        #expect(Curl.version.hasPrefix("libcurl/"))
        #expect(Curl.version.contains("OpenSSL"))
    }
}
