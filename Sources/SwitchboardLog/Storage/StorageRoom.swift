// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Tells a write that failed for want of room from other I/O errors. LMDB reports a short write
/// (what a file system that fills up mid-commit gives) as `EIO`, which reads like a broken disk.
enum StorageRoom {
    /// Less room than this on the file system, or under the file-size limit, counts as none left:
    /// one commit writes up to a few megabytes.
    static let margin: UInt64 = 16 << 20

    /// `error` with the shortage as its explanation, when its `errno` may come from a lack of room.
    static func explaining(_ error: LMDBError, directory: String,
                           outcome: String = "nothing of this write was committed") -> LMDBError {
        let code = error.returnCode
        guard code == EIO || code == ENOSPC || code == EFBIG || code == EDQUOT else { return error }
        var explained = error
        explained.explanation = shortage(directory: directory, outcome: outcome)
        return explained
    }

    /// Says so when the file system holding `directory` is (nearly) full, or the log's data file
    /// is at this process's file-size limit; nil when neither holds. `outcome` says what became
    /// of the data (a failed commit wrote nothing; a failed sync leaves commits not yet on disk).
    static func shortage(directory: String, outcome: String) -> String? {
        var fs = statvfs()
        if statvfs(directory, &fs) == 0 {
            // A file system may report nonsense: a product too large for 64 bits is plenty.
            let (product, overflow) = UInt64(fs.f_bavail).multipliedReportingOverflow(by: UInt64(fs.f_frsize))
            let free = overflow ? UInt64.max : product
            if free < margin {
                return "the file system holding \(directory) is full (\(free) bytes free); \(outcome): "
                    + "free some space and try again"
            }
        }
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            var info = stat()
            if stat(directory + "/data.mdb", &info) == 0, UInt64(info.st_size) + margin > UInt64(limit.rlim_cur) {
                return "data.mdb (\(info.st_size) bytes) reached this process's file-size limit of "
                    + "\(limit.rlim_cur) bytes (ulimit -f); \(outcome)"
            }
        }
        return nil
    }
}
