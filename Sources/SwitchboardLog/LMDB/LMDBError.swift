// SPDX-License-Identifier: Apache-2.0
internal import CLMDB

/// A failed LMDB call: the operation and LMDB's return code, mapped in one place.
struct LMDBError: Error, Sendable, CustomStringConvertible {
    /// The raw return code (an `errno` value or one of LMDB's `MDB_*` codes).
    var returnCode: Int32
    /// The C function that failed.
    var operation: String
    /// What the failure most likely means, when the code alone misleads (see ``StorageRoom``).
    var explanation: String?

    init(returnCode: Int32, operation: String) {
        self.returnCode = returnCode
        self.operation = operation
    }

    var isMapFull: Bool { returnCode == MDB_MAP_FULL }
    var isMapResized: Bool { returnCode == MDB_MAP_RESIZED }
    var isKeyExists: Bool { returnCode == MDB_KEYEXIST }

    var description: String {
        "\(operation): \(String(cString: mdb_strerror(returnCode))) (\(returnCode))" + (explanation.map { "; \($0)" } ?? "")
    }

    /// Throws for any code other than `MDB_SUCCESS`.
    @inline(__always)
    static func check(_ returnCode: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
        if returnCode != MDB_SUCCESS {
            throw LMDBError(returnCode: returnCode, operation: operation())
        }
    }
}
