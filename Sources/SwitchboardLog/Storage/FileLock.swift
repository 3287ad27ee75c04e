// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// An exclusive `flock` on a file, held until deinit: one writing process per log.
final class FileLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock without waiting; throws ``EventLogError/Code/locked`` naming the holder's pid.
    init(path: String) throws(EventLogError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw EventLogError(.storage, "cannot open \(path): \(String(cString: strerror(errno)))", returnCode: errno)
        }
        var attempts = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            let holder = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
                .trimmingSuffix(while: { $0 == "\n" || $0 == "\0" })
            // This process closed the log, but a child forked meanwhile still holds a copy of the
            // locked descriptor until it execs (O_CLOEXEC): wait for that, briefly.
            if code == EWOULDBLOCK && holder == String(getpid()) && attempts < 400 {
                attempts += 1
                usleep(5000)
                continue
            }
            close(fd)
            if code == EWOULDBLOCK {
                throw EventLogError(
                    .locked, "the event log is open for writing by another process (pid \(holder.isEmpty ? "?" : holder))")
            }
            throw EventLogError(.storage, "cannot lock \(path): \(String(cString: strerror(code)))", returnCode: code)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        descriptor = fd
    }

    deinit {
        // Closing the descriptor releases the flock.
        close(descriptor)
    }
}

/// The canonical paths of logs this process has open: LMDB forbids opening one environment twice
/// in a process (closing either would drop the other's locks).
final class OpenLogRegistry: Sendable {
    static let shared = OpenLogRegistry()
    private let paths = Mutex<Set<String>>([])

    func register(_ path: String) throws(EventLogError) -> Registration {
        let inserted = paths.withLock { $0.insert(path).inserted }
        guard inserted else {
            throw EventLogError(.alreadyOpen, "the event log at \(path) is already open in this process; share that instance")
        }
        return Registration(path: path, registry: self)
    }

    fileprivate func release(_ path: String) {
        _ = paths.withLock { $0.remove(path) }
    }

    final class Registration: Sendable {
        let path: String
        private let registry: OpenLogRegistry
        fileprivate init(path: String, registry: OpenLogRegistry) {
            self.path = path
            self.registry = registry
        }
        deinit { registry.release(path) }
    }
}

extension String {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> String {
        var copy = self
        while let last = copy.last, predicate(last) { copy.removeLast() }
        return copy
    }
}

/// Creates `path` and its missing parents as directories.
func makeDirectories(_ path: String) throws(EventLogError) {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw EventLogError(.storage, "cannot create directory \(current): \(String(cString: strerror(errno)))",
                                returnCode: errno)
        }
    }
}

/// The canonical absolute path of an existing file or directory, or nil.
func canonicalPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// The size of a file in bytes, or nil when it does not exist.
func fileSize(_ path: String) -> Int? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return Int(info.st_size)
}
