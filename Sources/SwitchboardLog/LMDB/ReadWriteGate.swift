// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lets any number of transactions run at once, or the map be resized with none running.
///
/// LMDB requires that `mdb_env_set_mapsize` is called while no transaction of this process is
/// active, and does not check it: every transaction holds the gate shared, a resize holds it
/// exclusively. Writers are preferred so that a steady stream of readers cannot starve a resize.
///
/// > Important: Never take the gate shared twice on one thread (no transaction inside another):
/// > with a resize waiting, the inner acquisition would deadlock.
final class ReadWriteGate: @unchecked Sendable {
    // Invariant: the lock lives at a stable heap address for the object's lifetime, is initialised
    // in init and destroyed only in deinit; pthread rwlocks are thread-safe by contract.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        #if canImport(Glibc)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        #endif
        let rc = pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
        precondition(rc == 0, "pthread_rwlock_init failed: \(rc)")
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func withShared<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withExclusive<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
