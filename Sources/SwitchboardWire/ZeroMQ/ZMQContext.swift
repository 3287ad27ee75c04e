// SPDX-License-Identifier: Apache-2.0
internal import CZeroMQ

/// Owns one ZeroMQ context; sockets keep it alive, so it terminates after the last of them closes.
public final class ZMQContext: @unchecked Sendable {
    // Invariant: `handle` is created in init and terminated only in deinit. libzmq contexts are
    // thread-safe; every socket holds a strong reference, so zmq_ctx_term (which waits for all
    // sockets to close) runs only once none is left.
    let handle: UnsafeMutableRawPointer

    public init(ioThreads: Int = 1) throws {
        guard let context = zmq_ctx_new() else {
            throw WireError(.zeroMQ, "zmq_ctx_new failed", errno: zmq_errno())
        }
        zmq_ctx_set(context, ZMQ_IO_THREADS, Int32(ioThreads))
        handle = context
    }

    deinit {
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }
}
