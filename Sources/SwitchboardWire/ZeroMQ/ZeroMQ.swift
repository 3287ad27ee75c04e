// SPDX-License-Identifier: Apache-2.0
internal import CZeroMQ

/// Facts about the linked libzmq.
public enum ZeroMQ {
    /// The libzmq version, e.g. `4.3.4`.
    public static var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Whether libzmq was built with a capability such as `curve`, `ipc` or `draft`.
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) == 1
    }
}
