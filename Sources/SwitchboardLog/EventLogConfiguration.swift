// SPDX-License-Identifier: Apache-2.0

/// When a commit reaches the disk.
public struct Durability: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init?(rawValue: String) {
        guard ["fsync", "buffered", "none"].contains(rawValue) else { return nil }
        self.rawValue = rawValue
    }
    private init(_ rawValue: String) { self.rawValue = rawValue }

    /// Every commit is flushed to disk before it returns: survives power loss (the default).
    public static let fsync = Durability("fsync")
    /// Commits are written to the OS and flushed later: survive a process crash, not power loss.
    public static let buffered = Durability("buffered")
    /// Commits are written straight into a writable memory map that the OS flushes when it likes:
    /// fastest; they survive a process crash, not power loss.
    public static let none = Durability("none")

    public var description: String { rawValue }
}

/// How an ``EventLog`` is opened.
public struct EventLogConfiguration: Sendable {
    /// When commits reach the disk.
    public var durability: Durability
    /// The memory map's size when the log is created; it doubles whenever it fills up.
    public var initialMapSize: Int
    /// The map never grows past this (bytes of address space, not of disk).
    public var maximumMapSize: Int
    /// Larger payloads are refused with ``EventLogError/Code/invalidEvent``.
    public var maximumPayloadSize: Int
    /// Projections kept besides the built-in ``RunStatusProjection``.
    public var projections: [any Projection]

    public init(
        durability: Durability = .fsync,
        initialMapSize: Int = 64 << 20,
        maximumMapSize: Int = 1 << 40,
        maximumPayloadSize: Int = 16 << 20,
        projections: [any Projection] = []
    ) {
        self.durability = durability
        self.initialMapSize = initialMapSize
        self.maximumMapSize = maximumMapSize
        self.maximumPayloadSize = maximumPayloadSize
        self.projections = projections
    }
}
