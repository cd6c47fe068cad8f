/* objcache.h - an on-disk cache of compiled object code, so a process can
 * skip LLVM's optimiser and code generator for code an earlier run built.
 *
 * The caller builds the key: a string naming everything the bytes depend on
 * (LLVM version, CPU, a hash of the IR, ...). The cache never interprets it;
 * it stores the whole key in the file and compares it on load, so a file
 * left by another key that hashed to the same name is a miss, not a hit.
 *
 * Where: $TT_CACHE_DIR if set (the value "off" disables the cache), else
 * $XDG_CACHE_HOME/tt, else $HOME/.cache/tt; created on the first store.
 * One file per key, <16 hex digits of the key's hash>.ttobj, holding a
 * header (magic, format version, key length, payload length, payload
 * checksum), the key and the payload. Stores write a temporary file in the
 * same directory and rename it, so readers see the old file or the new one,
 * never half of one.
 *
 * Every failure (no HOME, read-only or full disk, a truncated, corrupt or
 * foreign file) is a miss: load returns false, store returns false, nothing
 * is printed. TT_CACHE_DEBUG=1 prints one line per load/store on stderr.
 *
 * Trust: the directory and each entry must be owned by the effective user
 * and not writable by group or others (checked with fstat on the opened
 * descriptors; entries are opened with O_NOFOLLOW relative to the
 * directory's). An untrusted entry is a miss; an untrusted directory is
 * neither read nor written, and the first one in the process prints one
 * "tt: warning: ignoring the compiled-code cache ..." line on stderr.
 * Directories the cache creates are 0700, entries 0600.
 */
#ifndef TT_OBJCACHE_H
#define TT_OBJCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* On a hit, *bytes is a malloc'd copy of the payload (free it) and *len its
 * size. */
bool objcache_load(const char *key, void **bytes, size_t *len);
/* Writes (or replaces) the entry for key. False when nothing was stored. */
bool objcache_store(const char *key, const void *bytes, size_t len);

/* The file that holds key's entry (which need not exist); false when the
 * cache is off or has no directory. For tests and debugging. */
bool objcache_path(const char *key, char *path, size_t pathlen);

/* 64-bit FNV-1a, the hash used for file names and checksums; exported so
 * callers can fold large inputs (IR text) into their keys the same way. */
uint64_t objcache_hash(const void *p, size_t n);

#endif
