// SPDX-License-Identifier: Apache-2.0

/// Every failure of the wire layer: ZeroMQ calls that failed, and frames that break the protocol.
public struct WireError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case zeroMQ, malformed, tooLarge, closed, timeout }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A ZeroMQ call failed; ``WireError/errno`` holds its error number.
        public static let zeroMQ = Code(.zeroMQ)
        /// Frames that do not follow MDP/0.2 or the envelope format.
        public static let malformed = Code(.malformed)
        /// A message larger than the configured limit.
        public static let tooLarge = Code(.tooLarge)
        /// The socket or context was closed or terminated.
        public static let closed = Code(.closed)
        /// No answer within the allowed time.
        public static let timeout = Code(.timeout)

        public var description: String {
            switch base {
            case .zeroMQ: "zeromq"
            case .malformed: "malformed"
            case .tooLarge: "too large"
            case .closed: "closed"
            case .timeout: "timeout"
            }
        }
    }

    public var code: Code
    public var message: String
    /// The errno of the failed ZeroMQ call, when there was one.
    public var errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String { message }
}
