// SPDX-License-Identifier: Apache-2.0
#ifndef SWITCHBOARD_CLMDB_SHIM_H
#define SWITCHBOARD_CLMDB_SHIM_H
#include <lmdb.h>
#include <stdint.h>

// LMDB's flag macros import as Int32 while its API takes unsigned int: typed constants instead.
static const unsigned int sb_lmdb_notls = MDB_NOTLS;
static const unsigned int sb_lmdb_rdonly = MDB_RDONLY;
static const unsigned int sb_lmdb_nosync = MDB_NOSYNC;
static const unsigned int sb_lmdb_writemap = MDB_WRITEMAP;
static const unsigned int sb_lmdb_mapasync = MDB_MAPASYNC;
static const unsigned int sb_lmdb_nordahead = MDB_NORDAHEAD;
static const unsigned int sb_lmdb_create = MDB_CREATE;
static const unsigned int sb_lmdb_append = MDB_APPEND;
static const unsigned int sb_lmdb_nooverwrite = MDB_NOOVERWRITE;
static const unsigned int sb_lmdb_dupsort = MDB_DUPSORT;
static const unsigned int sb_lmdb_dupfixed = MDB_DUPFIXED;
static const unsigned int sb_lmdb_appenddup = MDB_APPENDDUP;

// Swift has no prefetch: a walk asks for the memory it reads next while it works on what it has.
// The address is an integer, as it may lie outside the page the caller holds; a prefetch never faults.
static inline void sb_lmdb_prefetch(uintptr_t address) { __builtin_prefetch((const void *)address, 0, 3); }

#endif
