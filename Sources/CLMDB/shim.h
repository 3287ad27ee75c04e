// SPDX-License-Identifier: Apache-2.0
#ifndef SWITCHBOARD_CLMDB_SHIM_H
#define SWITCHBOARD_CLMDB_SHIM_H
#include <lmdb.h>

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

#endif
