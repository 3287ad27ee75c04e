// SPDX-License-Identifier: Apache-2.0

/// What a native worker tells the router in the extra frame of its READY: the agent version and
/// config digest (for determinism locks) and how many requests it takes at once.
///
/// Layout: `"SBW" 0x01 | u8+version | u8+config digest | u32 LE capacity`.
public struct WorkerMetadata: Sendable, Hashable {
    public static let magic: [UInt8] = [0x53, 0x42, 0x57, 0x01]

    public var version: String
    public var configDigest: String
    public var capacity: Int

    public init(version: String, configDigest: String = "", capacity: Int = 1) {
        self.version = version
        self.configDigest = configDigest
        self.capacity = capacity
    }

    public func encoded() -> [UInt8] {
        var out = Self.magic
        for text in [version, configDigest] {
            // At most 255 bytes, cut between characters so the text stays valid UTF-8.
            var cut = Substring(text)
            while cut.utf8.count > 255 { cut.removeLast() }
            let bytes = Array(cut.utf8)
            out.append(UInt8(bytes.count))
            out.append(contentsOf: bytes)
        }
        withUnsafeBytes(of: UInt32(clamping: capacity).littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// Decodes the frame; nil when it is not valid metadata.
    public init?(decoding frame: [UInt8]) {
        guard frame.starts(with: Self.magic) else { return nil }
        var index = 4
        var texts: [String] = []
        for _ in 0..<2 {
            guard index < frame.count else { return nil }
            let length = Int(frame[index])
            guard frame.count >= index + 1 + length,
                  let text = UTF8Text.string(frame[(index + 1)..<(index + 1 + length)])
            else { return nil }
            texts.append(text)
            index += 1 + length
        }
        guard frame.count == index + 4 else { return nil }
        let capacity = frame[index...].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        self.init(version: texts[0], configDigest: texts[1], capacity: Int(capacity))
    }
}
