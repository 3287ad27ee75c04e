// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// The header a native Switchboard peer puts in the first body frame of a request or reply.
///
/// A body whose first frame does not start with ``magic`` is a plain MDP body. Layout
/// (integers little-endian):
/// ```
/// "SBE" 0x01 | u8+message id | u8+run id | u8+causation id | u32 attempt | i64 deadline (ns, 0 none)
/// | u16 header count | per header: u8+key, u16+value
/// ```
public struct Envelope: Sendable, Hashable {
    public static let magic: [UInt8] = [0x53, 0x42, 0x45, 0x01]

    public var messageID: String
    public var runID: String
    public var causationID: String
    /// 1 for the first delivery; the router raises it on every redelivery.
    public var attempt: UInt32
    /// Nanoseconds since the Unix epoch after which the request is worthless; 0 for none.
    public var deadline: Int64
    /// Extra metadata, kept in key order so the encoding is deterministic.
    public var headers: [String: String]

    public init(messageID: String, runID: String = "", causationID: String = "", attempt: UInt32 = 1,
                deadline: Int64 = 0, headers: [String: String] = [:]) {
        self.messageID = messageID
        self.runID = runID
        self.causationID = causationID
        self.attempt = attempt
        self.deadline = deadline
        self.headers = headers
    }

    /// The agent instance a message is for (the run id when absent): the router sends all messages
    /// of one key to the same worker, so that one host holds each instance.
    public static let keyHeader = "key"
    /// On an ask whose handler is re-executing (a redelivery or a fork): the ask may have been
    /// answered before, so the router looks in the log when its memory has no answer.
    public static let reissueHeader = "reissue"
    /// On a request the router dispatches: the target instance's log stream has no events, so the
    /// host makes the instance fresh instead of asking `sb.state`. Dispatch only, never logged.
    public static let emptyStateHeader = "state.empty"
    /// On the first message of a fork: the parent run, the fork position, the parent's first
    /// message id and its logged receive time (nanoseconds).
    public static let forkParentHeader = "fork.parent"
    public static let forkUntilHeader = "fork.until"
    public static let forkOriginHeader = "fork.origin"
    public static let forkTimeHeader = "fork.time"

    /// A new run id: `run-` and 16 hex digits, 4 of the wall clock in steps of 16 ms (wrapping
    /// every 17.5 minutes) and 12 random ones.
    ///
    /// Runs started close together get ids that sort close together, so the log's per-run keys
    /// (run index, run status, agent streams) of the runs in flight share a few B-tree pages and a
    /// commit rewrites those instead of one page per run. The id keeps the length of 16 random
    /// digits, which the log repeats in every event's ids.
    public static func newRunID() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let milliseconds = UInt64(max(0, now.tv_sec)) &* 1000 &+ UInt64(max(0, now.tv_nsec)) / 1_000_000
        return "run-" + hexDigits((milliseconds >> 4) & 0xFFFF, count: 4)
            + hexDigits(UInt64.random(in: 0..<(1 << 48)), count: 12)
    }

    private static func hexDigits(_ value: UInt64, count: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: count - digits.count) + digits
    }

    /// Whether `frame` starts with the envelope magic.
    public static func isEnvelope(_ frame: [UInt8]) -> Bool {
        frame.starts(with: magic)
    }

    /// - Parameter omitted: a header left out, as if absent (the router strips one per message,
    ///   without copying the headers to remove it).
    public func encoded(omitting omitted: String? = nil) throws -> [UInt8] {
        let omits = omitted.map { headers[$0] != nil } ?? false
        let headerCount = headers.count - (omits ? 1 : 0)
        guard headerCount <= Int(UInt16.max) else { throw WireError(.tooLarge, "too many envelope headers") }
        // Sized first and written once: the router and every host encode one per message.
        var size = Self.magic.count + 3 + 4 + 8 + 2
        let ids = (messageID.utf8.count, runID.utf8.count, causationID.utf8.count)
        guard ids.0 <= 255, ids.1 <= 255, ids.2 <= 255 else {
            throw WireError(.tooLarge, "envelope field longer than 255 bytes")
        }
        size += ids.0 + ids.1 + ids.2
        for (key, value) in headers where !omits || key != omitted {
            guard key.utf8.count <= 255 else { throw WireError(.tooLarge, "envelope field longer than 255 bytes") }
            guard value.utf8.count <= Int(UInt16.max) else {
                throw WireError(.tooLarge, "envelope header \(key) is too long")
            }
            size += 1 + key.utf8.count + 2 + value.utf8.count
        }
        var out: [UInt8] = []
        out.reserveCapacity(size)
        out.append(contentsOf: Self.magic)
        Self.appendShort(messageID, to: &out)
        Self.appendShort(runID, to: &out)
        Self.appendShort(causationID, to: &out)
        Self.appendInteger(attempt, to: &out)
        Self.appendInteger(UInt64(bitPattern: deadline), to: &out)
        Self.appendInteger(UInt16(headerCount), to: &out)
        if headers.count == 1, let (key, value) = headers.first {
            if !omits { Self.appendHeader(key, value, to: &out) }
        } else if !headers.isEmpty {
            // Key order keeps the encoding deterministic.
            for (key, value) in headers.sorted(by: { $0.key < $1.key }) where !omits || key != omitted {
                Self.appendHeader(key, value, to: &out)
            }
        }
        return out
    }

    /// Decodes an envelope frame; throws ``WireError/Code/malformed`` for anything else.
    public init(decoding frame: [UInt8]) throws {
        self = try frame.withUnsafeBytes { raw in
            var reader = try Reader(envelope: raw)
            let messageID = try reader.shortString()
            let runID = try reader.shortString()
            let causationID = try reader.shortString()
            let attempt = try reader.integer(UInt32.self)
            let deadline = Int64(bitPattern: try reader.integer(UInt64.self))
            return Envelope(messageID: messageID, runID: runID, causationID: causationID, attempt: attempt,
                            deadline: deadline, headers: try reader.headers())
        }
    }

    /// Only the headers of an envelope frame, skipping its ids (replay reads one per logged
    /// message); throws ``WireError/Code/malformed`` as ``init(decoding:)`` does.
    public static func headers(decoding frame: [UInt8]) throws -> [String: String] {
        try frame.withUnsafeBytes { raw in
            var reader = try Reader(headersOf: raw)
            return try reader.headers()
        }
    }

    /// The value of one header of an envelope frame, or nil when it has none; throws
    /// ``WireError/Code/malformed`` as ``init(decoding:)`` does. Makes no dictionary and no other
    /// string: replay reads the status of every logged reply. Keys are compared byte for byte, as
    /// the dictionary compares ASCII keys.
    public static func header(_ name: String, decoding frame: [UInt8]) throws -> String? {
        try frame.withUnsafeBytes { raw in
            var reader = try Reader(headersOf: raw)
            return try reader.header(name)
        }
    }

    /// The causation id of an envelope frame and the value of one of its headers (nil when absent),
    /// as ``init(decoding:)`` reads them but making no other string and no dictionary: a host reads
    /// these two of every reply to its asks. Throws ``WireError/Code/malformed`` as it does.
    public static func causationID(andHeader name: String, decoding frame: [UInt8]) throws
        -> (causationID: String, header: String?)
    {
        try frame.withUnsafeBytes { raw in
            var reader = try Reader(envelope: raw)
            for _ in 0..<2 { _ = try reader.text(Int(try reader.integer(UInt8.self))) }
            let causationID = try reader.shortString()
            _ = try reader.take(12)  // attempt and deadline
            return (causationID, try reader.header(name))
        }
    }

    /// `frame` with its run id, attempt and some headers replaced, written in one pass without
    /// making strings or a dictionary of it: the router rewrites an envelope per dispatch.
    ///
    /// - Parameter changes: headers to set (a nil value removes one), in increasing key order.
    /// - Returns: nil when `frame` is truncated, or its header keys are not ASCII in strictly
    ///   increasing order (as ``encoded(omitting:)`` writes them); decode and encode it then. The
    ///   frame's text is not checked as UTF-8 again: it was decoded before.
    public static func rewriting(_ frame: [UInt8], runID: String? = nil, attempt: UInt32? = nil,
                                 headers changes: [(key: String, value: String?)]) -> [UInt8]? {
        frame.withUnsafeBytes { raw -> [UInt8]? in
            guard raw.count >= magic.count + 3 + 12 + 2, raw.starts(with: magic) else { return nil }
            var index = magic.count
            func short() -> Range<Int>? {
                guard index < raw.count else { return nil }
                let start = index + 1, end = start + Int(raw[index])
                guard end <= raw.count else { return nil }
                index = end
                return start..<end
            }
            guard let message = short(), let run = short(), let causation = short(),
                  raw.count - index >= 14 else { return nil }
            let fixed = index..<index + 12
            index += 12
            let count = Int(raw[index]) | Int(raw[index + 1]) << 8
            index += 2
            var headers: [(key: Range<Int>, value: Range<Int>)] = []
            headers.reserveCapacity(count)
            for _ in 0..<count {
                guard let key = short(), raw.count - index >= 2 else { return nil }
                let length = Int(raw[index]) | Int(raw[index + 1]) << 8
                let value = index + 2..<index + 2 + length
                guard value.upperBound <= raw.count, !raw[key].contains(where: { $0 >= 0x80 }) else { return nil }
                if let last = headers.last, !raw[last.key].lexicographicallyPrecedes(raw[key]) { return nil }
                headers.append((key, value))
                index = value.upperBound
            }
            guard index == raw.count else { return nil }

            var out: [UInt8] = []
            out.reserveCapacity(raw.count + (runID?.utf8.count ?? 0) + changes.reduce(0) {
                $0 + 3 + $1.key.utf8.count + ($1.value?.utf8.count ?? 0)
            })
            out.append(contentsOf: raw[..<message.upperBound])
            if let runID {
                guard runID.utf8.count <= 255 else { return nil }
                appendShort(runID, to: &out)
            } else {
                out.append(contentsOf: raw[run.lowerBound - 1..<run.upperBound])
            }
            out.append(contentsOf: raw[causation.lowerBound - 1..<causation.upperBound])
            if let attempt {
                appendInteger(attempt, to: &out)
                out.append(contentsOf: raw[fixed.lowerBound + 4..<fixed.upperBound])
            } else {
                out.append(contentsOf: raw[fixed])
            }
            let countAt = out.count
            out.append(contentsOf: [0, 0])
            var written = 0
            var next = 0
            func copyExisting(_ header: (key: Range<Int>, value: Range<Int>)) {
                out.append(contentsOf: raw[header.key.lowerBound - 1..<header.value.upperBound])
                written += 1
            }
            for change in changes {
                var key = change.key
                // Existing headers before the changed key are copied; one with the key is replaced.
                let replaces = key.withUTF8 { wanted -> Bool in
                    while next < headers.count {
                        let existing = raw[headers[next].key]
                        if existing.elementsEqual(wanted) { return true }
                        guard existing.lexicographicallyPrecedes(wanted) else { return false }
                        copyExisting(headers[next])
                        next += 1
                    }
                    return false
                }
                if replaces { next += 1 }
                if let value = change.value {
                    guard key.utf8.count <= 255, value.utf8.count <= Int(UInt16.max) else { return nil }
                    appendHeader(key, value, to: &out)
                    written += 1
                }
            }
            while next < headers.count {
                copyExisting(headers[next])
                next += 1
            }
            guard written <= Int(UInt16.max) else { return nil }
            out[countAt] = UInt8(truncatingIfNeeded: written)
            out[countAt + 1] = UInt8(truncatingIfNeeded: written >> 8)
            return out
        }
    }

    /// Lengths were checked by the caller.
    private static func appendShort(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: value.utf8.count))
        out.append(contentsOf: value.utf8)
    }

    private static func appendHeader(_ key: String, _ value: String, to out: inout [UInt8]) {
        appendShort(key, to: &out)
        appendInteger(UInt16(truncatingIfNeeded: value.utf8.count), to: &out)
        out.append(contentsOf: value.utf8)
    }

    private static func appendInteger<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        var remaining = value
        for _ in 0..<MemoryLayout<T>.size {
            out.append(UInt8(truncatingIfNeeded: remaining))
            remaining >>= 8
        }
    }

    /// Reads a frame in place: slices of an array would retain and release it for every field.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        /// A reader past the magic of an envelope frame.
        init(envelope frame: UnsafeRawBufferPointer) throws {
            bytes = frame
            guard try take(4).elementsEqual(Envelope.magic) else {
                throw WireError(.malformed, "not an envelope (bad magic)")
            }
        }

        /// A reader at the header count of an envelope frame, its ids checked and skipped.
        init(headersOf frame: UnsafeRawBufferPointer) throws {
            try self.init(envelope: frame)
            for _ in 0..<3 { _ = try text(Int(try integer(UInt8.self))) }
            _ = try take(12)  // attempt and deadline
        }

        /// The next `count` bytes, checked as UTF-8 but made into no string: ASCII is checked in one pass.
        mutating func text(_ count: Int) throws -> UnsafeRawBufferPointer {
            let bytes = try take(count)
            if bytes.contains(where: { $0 >= 0x80 }), String(validating: bytes, as: UTF8.self) == nil {
                throw WireError(.malformed, "envelope text is not UTF-8")
            }
            return bytes
        }

        /// The header count and headers that end a frame.
        mutating func headers() throws -> [String: String] {
            var headers: [String: String] = [:]
            let count = Int(try integer(UInt16.self))
            // Room for the header or two the router adds as it dispatches: one allocation, not several.
            // No more than the frame can hold (3 bytes a header at least): a count is not trusted.
            if count > 0 { headers.reserveCapacity(min(count, (bytes.count - index) / 3) + 2) }
            for _ in 0..<count {
                let key = try shortString()
                let length = Int(try integer(UInt16.self))
                headers[key] = try string(length)
            }
            guard isAtEnd else { throw WireError(.malformed, "envelope has trailing bytes") }
            return headers
        }

        /// The value of header `name` among the header count and headers that end a frame; the
        /// last of a repeated key wins, as in the decoded headers. Keys are compared byte for byte,
        /// as the dictionary compares ASCII keys.
        mutating func header(_ name: String) throws -> String? {
            var name = name
            return try name.withUTF8 { wanted in
                var found: UnsafeRawBufferPointer?
                let count = Int(try integer(UInt16.self))
                for _ in 0..<count {
                    let key = try text(Int(try integer(UInt8.self)))
                    let value = try text(Int(try integer(UInt16.self)))
                    if key.elementsEqual(UnsafeRawBufferPointer(wanted)) { found = value }
                }
                guard isAtEnd else { throw WireError(.malformed, "envelope has trailing bytes") }
                // `text` checked the value as UTF-8 already.
                return found.map { String(decoding: $0, as: UTF8.self) }
            }
        }

        var isAtEnd: Bool { index == bytes.count }

        mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
            guard count >= 0, bytes.count - index >= count else { throw WireError(.malformed, "envelope is truncated") }
            defer { index += count }
            return UnsafeRawBufferPointer(rebasing: bytes[index..<index + count])
        }

        /// A little-endian integer.
        mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
            let slice = try take(MemoryLayout<T>.size)
            var value = T(0)
            for (shift, byte) in slice.enumerated() { value |= T(byte) << (shift * 8) }
            return value
        }

        mutating func string(_ count: Int) throws -> String {
            guard let value = UTF8Text.string(try take(count)) else {
                throw WireError(.malformed, "envelope text is not UTF-8")
            }
            return value
        }

        mutating func shortString() throws -> String {
            try string(Int(try integer(UInt8.self)))
        }
    }
}
