// SPDX-License-Identifier: Apache-2.0
internal import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// The socket types Switchboard uses.
public struct ZMQSocketType: RawRepresentable, Sendable, Hashable {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let router = ZMQSocketType(rawValue: ZMQ_ROUTER)
    public static let dealer = ZMQSocketType(rawValue: ZMQ_DEALER)
    public static let xpub = ZMQSocketType(rawValue: ZMQ_XPUB)
    public static let sub = ZMQSocketType(rawValue: ZMQ_SUB)
    public static let pair = ZMQSocketType(rawValue: ZMQ_PAIR)
}

/// Owns one ZeroMQ socket. Like the C socket, it must be used by one thread at a time.
///
/// Frames are `[UInt8]`: a received frame is copied once out of its `zmq_msg_t`, a sent frame
/// once into ZeroMQ.
public final class ZMQSocket {
    public let context: ZMQContext
    public let type: ZMQSocketType
    fileprivate let handle: UnsafeMutableRawPointer
    /// Reused for every received frame; `zmq_msg_t` must keep a stable address.
    private let message: UnsafeMutablePointer<zmq_msg_t>
    /// Short frames a protocol repeats in every message (MDP's headers): a received frame equal to
    /// one is handed out as that array, not allocated again. One-byte frames always are.
    public var sharedFrames: [[UInt8]] = []
    private static let oneByteFrames: [[UInt8]] = (0...255).map { [UInt8($0)] }
    /// Short frames received lately (peer addresses, service names), one per slot chosen by a hash
    /// of their bytes: a frame seen again is handed out as the same array, not allocated again.
    private var recentShortFrames = [[UInt8]](repeating: [], count: 64)
    private static let shortFrameLimit = 32

    /// Creates a socket whose pending messages are dropped at close (`linger` milliseconds).
    public init(_ context: ZMQContext, type: ZMQSocketType, linger: Int32 = 0) throws {
        guard let socket = zmq_socket(context.handle, type.rawValue) else {
            throw Self.failure("zmq_socket")
        }
        var value = linger
        zmq_setsockopt(socket, ZMQ_LINGER, &value, MemoryLayout<Int32>.size)
        self.context = context
        self.type = type
        self.handle = socket
        self.message = .allocate(capacity: 1)
    }

    deinit {
        zmq_close(handle)
        message.deallocate()
    }

    static func failure(_ operation: String) -> WireError {
        let code = zmq_errno()
        let text = String(cString: zmq_strerror(code))
        return WireError(code == ETERM ? .closed : .zeroMQ, "\(operation): \(text)", errno: code)
    }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw Self.failure("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw Self.failure("connect \(endpoint)") }
    }

    /// The endpoint last bound, with the port the OS chose for `tcp://…:*`.
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func setOption(_ option: ZMQOption, _ value: Int32) throws {
        var value = value
        guard zmq_setsockopt(handle, option.rawValue, &value, MemoryLayout<Int32>.size) == 0 else {
            throw Self.failure("zmq_setsockopt(\(option.rawValue))")
        }
    }

    /// For the options libzmq defines as int64 (``ZMQOption/maximumMessageSize``).
    public func setOption(_ option: ZMQOption, int64 value: Int64) throws {
        var value = value
        guard zmq_setsockopt(handle, option.rawValue, &value, MemoryLayout<Int64>.size) == 0 else {
            throw Self.failure("zmq_setsockopt(\(option.rawValue))")
        }
    }

    public func setOption(_ option: ZMQOption, _ bytes: [UInt8]) throws {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option.rawValue, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw Self.failure("zmq_setsockopt(\(option.rawValue))") }
    }

    /// Sends `frames` as one multipart message. Returns false when it would block and `wait` is false.
    @discardableResult
    public func send(_ frames: [[UInt8]], wait: Bool = true) throws -> Bool {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        // By index: iterating would retain and release every frame.
        for index in frames.indices {
            guard try send(frames[index], index: index, last: index == frames.count - 1, wait: wait) else {
                return false
            }
        }
        return true
    }

    /// Sends `[first] + rest` without building that array (a ROUTER's peer address, then the message).
    public func send(_ first: [UInt8], _ rest: [[UInt8]], wait: Bool = true) throws -> Bool {
        guard try send(first, index: 0, last: rest.isEmpty, wait: wait) else { return false }
        for index in rest.indices {
            _ = try send(rest[index], index: index + 1, last: index == rest.count - 1, wait: wait)
        }
        return true
    }

    private func send(_ frame: [UInt8], index: Int, last: Bool, wait: Bool) throws -> Bool {
        var flags: Int32 = last ? 0 : ZMQ_SNDMORE
        if !wait { flags |= ZMQ_DONTWAIT }
        while true {
            let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            if rc >= 0 { return true }
            let code = zmq_errno()
            if code == EINTR { continue }
            // Only the first frame can fail with EAGAIN: later ones queue behind it atomically.
            if code == EAGAIN && index == 0 { return false }
            throw Self.failure("zmq_send")
        }
    }

    /// Receives one multipart message; nil when `wait` is false and none is ready.
    public func receive(wait: Bool = true) throws -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        // Room for an MDP message's usual frames: growing one by one reallocates three times.
        frames.reserveCapacity(8)
        return try receive(into: &frames, wait: wait, first: true) ? frames : nil
    }

    /// Receives one multipart message on a ROUTER socket: the peer's address apart from the rest,
    /// which taking it off the front of one array afterwards would shift. Nil when `wait` is false
    /// and none is ready.
    public func receiveRouted(wait: Bool = true) throws -> (identity: [UInt8], frames: [[UInt8]])? {
        var identity: [UInt8] = []
        guard let more = try receiveFrame(into: &identity, wait: wait, first: true) else { return nil }
        var frames: [[UInt8]] = []
        frames.reserveCapacity(8)
        if more { _ = try receive(into: &frames, wait: true, first: false) }
        return (identity, frames)
    }

    /// Appends the frames of one message (or the rest of one whose first frame was taken apart).
    private func receive(into frames: inout [[UInt8]], wait: Bool, first: Bool = true) throws -> Bool {
        var more = true
        while more {
            var frame: [UInt8] = []
            let isFirst = first && frames.isEmpty
            guard let next = try receiveFrame(into: &frame, wait: wait || !isFirst, first: isFirst) else { return false }
            frames.append(frame)
            more = next
        }
        return true
    }

    /// Receives one frame; returns whether more frames of its message follow, or nil when none is
    /// ready for a message's `first` frame (`wait` false, or a receive timeout).
    private func receiveFrame(into frame: inout [UInt8], wait: Bool, first: Bool) throws -> Bool? {
        zmq_msg_init(message)
        defer { zmq_msg_close(message) }
        while zmq_msg_recv(message, handle, wait ? 0 : ZMQ_DONTWAIT) < 0 {
            let code = zmq_errno()
            if code == EINTR { continue }
            if code == EAGAIN && first { return nil }
            throw Self.failure("zmq_msg_recv")
        }
        let size = zmq_msg_size(message)
        if let data = zmq_msg_data(message), size > 0 {
            let bytes = UnsafeRawBufferPointer(start: data, count: size)
            if size == 1 {
                frame = Self.oneByteFrames[Int(bytes[0])]
            } else if let shared = sharedFrames.first(where: { $0.count == size && $0.elementsEqual(bytes) }) {
                frame = shared
            } else if size <= Self.shortFrameLimit {
                let slot = Self.slot(of: bytes, among: recentShortFrames.count)
                let seen = recentShortFrames[slot].withUnsafeBytes {
                    $0.count == size && memcmp($0.baseAddress!, data, size) == 0
                }
                if seen {
                    frame = recentShortFrames[slot]
                } else {
                    frame = Array(bytes)
                    recentShortFrames[slot] = frame
                }
            } else {
                frame = Array(bytes)
            }
        } else {
            frame = []
        }
        return zmq_msg_more(message) != 0
    }

    /// FNV-1a of `bytes`, reduced to one of `count` slots (a power of two).
    private static func slot(of bytes: UnsafeRawBufferPointer, among count: Int) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in bytes { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash & UInt32(count - 1))
    }

    /// Waits until one of `sockets` is readable or `timeout` milliseconds pass (-1: forever);
    /// returns which are readable.
    public static func poll(_ sockets: [ZMQSocket], timeout: Int) throws -> [Bool] {
        var poller = ZMQPoller(sockets)
        try poller.poll(timeout: timeout)
        return sockets.indices.map(poller.isReadable)
    }
}

/// A set of sockets polled again and again, its items kept between polls: a loop that polls on
/// every cycle then builds no arrays for it. It holds each socket until another takes its place.
public struct ZMQPoller {
    private var sockets: [ZMQSocket]
    private var items: [zmq_pollitem_t]

    public init(_ sockets: [ZMQSocket]) {
        self.sockets = sockets
        items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
    }

    public var count: Int { sockets.count }

    /// Puts `socket` at `index`, as when a socket is replaced by a new one.
    public mutating func set(_ index: Int, _ socket: ZMQSocket) {
        guard sockets[index] !== socket else { return }
        sockets[index] = socket
        items[index].socket = socket.handle
    }

    /// Waits, as ``ZMQSocket/poll(_:timeout:)`` does, for the first `count` sockets of the set
    /// (the rest are left out of this poll and read as not readable).
    public mutating func poll(timeout: Int, count: Int? = nil) throws {
        let polled = min(count ?? items.count, items.count)
        for index in items.indices { items[index].revents = 0 }
        while true {
            let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32(polled), timeout) }
            if rc >= 0 { return }
            if zmq_errno() == EINTR { continue }
            throw ZMQSocket.failure("zmq_poll")
        }
    }

    /// Whether the socket at `index` was readable at the last poll.
    public func isReadable(_ index: Int) -> Bool {
        items[index].revents & Int16(ZMQ_POLLIN) != 0
    }
}

@available(*, unavailable)
extension ZMQSocket: Sendable {}

/// Socket options, by their `ZMQ_*` number.
public struct ZMQOption: RawRepresentable, Sendable, Hashable {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let sendHighWaterMark = ZMQOption(rawValue: ZMQ_SNDHWM)
    public static let receiveHighWaterMark = ZMQOption(rawValue: ZMQ_RCVHWM)
    public static let maximumMessageSize = ZMQOption(rawValue: ZMQ_MAXMSGSIZE)
    public static let routingID = ZMQOption(rawValue: ZMQ_ROUTING_ID)
    public static let subscribe = ZMQOption(rawValue: ZMQ_SUBSCRIBE)
    public static let routerMandatory = ZMQOption(rawValue: ZMQ_ROUTER_MANDATORY)
    public static let routerHandover = ZMQOption(rawValue: ZMQ_ROUTER_HANDOVER)
    public static let xpubVerbose = ZMQOption(rawValue: ZMQ_XPUB_VERBOSE)
    public static let immediate = ZMQOption(rawValue: ZMQ_IMMEDIATE)
    public static let linger = ZMQOption(rawValue: ZMQ_LINGER)
}
