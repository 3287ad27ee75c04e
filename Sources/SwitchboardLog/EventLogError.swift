// SPDX-License-Identifier: Apache-2.0

/// Every failure of the event log: what kind, a message for people, and where it came from.
public struct EventLogError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure; compare with the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case storage, corruptRecord, versionConflict, invalidEvent, notFound, locked, alreadyOpen
            case unsupportedFormat, readOnly, invalidConfiguration
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// LMDB or the file system failed (full disk, permissions, map limit).
        public static let storage = Code(.storage)
        /// A stored record failed its checksum, its hash chain link, or could not be decoded.
        public static let corruptRecord = Code(.corruptRecord)
        /// A stream's version was not the one the append expected; nothing was written.
        public static let versionConflict = Code(.versionConflict)
        /// An event to append breaks a limit (empty type, field too long, payload too large).
        public static let invalidEvent = Code(.invalidEvent)
        /// There is no event log at the given path.
        public static let notFound = Code(.notFound)
        /// Another process holds the log open for writing.
        public static let locked = Code(.locked)
        /// This process already has the log open; share that instance.
        public static let alreadyOpen = Code(.alreadyOpen)
        /// The log was written by a newer, unknown format version.
        public static let unsupportedFormat = Code(.unsupportedFormat)
        /// A write was attempted on a log opened read-only.
        public static let readOnly = Code(.readOnly)
        /// The configuration is unusable (a projection name, a limit out of range).
        public static let invalidConfiguration = Code(.invalidConfiguration)

        public var description: String {
            switch base {
            case .storage: "storage"
            case .corruptRecord: "corrupt record"
            case .versionConflict: "version conflict"
            case .invalidEvent: "invalid event"
            case .notFound: "not found"
            case .locked: "locked"
            case .alreadyOpen: "already open"
            case .unsupportedFormat: "unsupported format"
            case .readOnly: "read-only"
            case .invalidConfiguration: "invalid configuration"
            }
        }
    }

    public var code: Code
    public var message: String
    /// What went wrong, without the position the message names (the same as `message` otherwise).
    public var reason: String
    /// The log position the failure concerns, for corrupt records.
    public var position: UInt64?
    /// The raw return code of the C call that failed, if one did.
    public var returnCode: Int32?
    public var cause: (any Error)?
    public var location: String

    public init(
        _ code: Code,
        _ message: String,
        position: UInt64? = nil,
        returnCode: Int32? = nil,
        cause: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.reason = message
        self.position = position
        self.returnCode = returnCode
        self.cause = cause
        self.location = "\(file):\(line)"
    }

    public var description: String { message }

    static func storage(_ error: LMDBError, file: String = #fileID, line: Int = #line) -> EventLogError {
        EventLogError(.storage, "storage error: \(error)", returnCode: error.returnCode, cause: error,
                      file: file, line: line)
    }

    static func corrupt(_ position: UInt64, _ reason: String) -> EventLogError {
        var error = EventLogError(.corruptRecord, "corrupt record at position \(position): \(reason)", position: position)
        error.reason = reason
        return error
    }
}

extension EventLogError {
    /// Runs `body`, turning LMDB's errors into ``EventLogError`` and passing others through.
    static func mapping<R>(_ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as LMDBError {
            throw EventLogError.storage(error)
        }
    }
}
