// SPDX-License-Identifier: Apache-2.0
#ifndef SWITCHBOARD_CHASH_SHIM_H
#define SWITCHBOARD_CHASH_SHIM_H
// The low-level SHA-256 API skips EVP's per-call provider fetch (2x slower for small records);
// OpenSSL 3 marks it deprecated but keeps it.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// Swift cannot emit the SSE4.2 crc32 instruction without compiling the whole module for it:
// these wrappers carry the target attribute themselves and are called only after the CPU check.
#if defined(__x86_64__)
static inline int sb_crc32c_hardware_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}
__attribute__((target("sse4.2")))
static inline uint32_t sb_crc32c_hardware(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = crc;
    while (length >= 8) { uint64_t w; memcpy(&w, p, 8); c = __builtin_ia32_crc32di(c, w); p += 8; length -= 8; }
    uint32_t c32 = (uint32_t)c;
    while (length > 0) { c32 = __builtin_ia32_crc32qi(c32, *p); p++; length--; }
    return c32;
}
#else
static inline int sb_crc32c_hardware_available(void) { return 0; }
static inline uint32_t sb_crc32c_hardware(uint32_t crc, const void *data, size_t length) { (void)data; (void)length; return crc; }
#endif
#endif
