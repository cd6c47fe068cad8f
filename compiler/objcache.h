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
 *
 * Size: the entries' total stays under a cap, 512 MB (536870912 bytes) by
 * default; TT_CACHE_MAX=<bytes> changes it (an optional K, M or G suffix
 * multiplies by 1024, 1024^2, 1024^3). Any value of at least 100 KB
 * (100000 bytes) is honoured; a smaller or malformed one gets one
 * "tt: warning: ..." line on stderr and the default is used. A hit sets the
 * entry's modification time to now; a store that takes the total over the
 * cap removes the least recently used entries (oldest modification time
 * first, never the one just stored) until the total is under 90% of the
 * cap. An entry larger than the cap is not stored. The total is kept in a
 * small file of the directory ("usage": bytes, entries, stores since the
 * last scan), so a store reads and rewrites that file instead of listing
 * the directory; the directory is listed (and the file corrected) when the
 * file is missing or unreadable, every 64th store (concurrent processes
 * may lose each other's updates of it) and when evicting.
 */
#ifndef TT_OBJCACHE_H
#define TT_OBJCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* On a hit, *bytes is a malloc'd copy of the payload (free it) and *len its
 * size. */
bool objcache_load(const char *key, void **bytes, size_t *len);
/* objcache_load of a text entry: its first cap - 1 bytes as a string in
 * text. */
bool objcache_load_text(const char *key, char *text, size_t cap);
/* Writes (or replaces) the entry for key. False when nothing was stored. */
bool objcache_store(const char *key, const void *bytes, size_t len);

/* The file that holds key's entry (which need not exist); false when the
 * cache is off or has no directory. For tests and debugging. */
bool objcache_path(const char *key, char *path, size_t pathlen);

/* The size cap in bytes (TT_CACHE_MAX, see above). */
uint64_t objcache_max_bytes(void);

/* What `ttrun --cache-info` prints. */
typedef struct ObjcacheInfo {
    bool enabled;   /* false: TT_CACHE_DIR=off, or no directory can be named */
    bool exists;    /* the directory exists */
    bool trusted;   /* it passes the trust checks (why says otherwise) */
    char dir[4096]; /* the cache directory */
    char why[160];
    int64_t entries; /* entry files (NAME.ttobj) */
    uint64_t bytes;  /* their total size */
    uint64_t cap;    /* objcache_max_bytes() */
} ObjcacheInfo;
/* Fills *info by listing the directory (not from the usage file). */
void objcache_info(ObjcacheInfo *info);

/* Removes the cache's own files (entries, temporary files of interrupted
 * stores, the usage file) from a trusted cache directory, nothing else:
 * only regular files owned by the effective user whose names the cache
 * makes. The number removed, 0 when there is no directory, or -1 when the
 * cache is off or its directory is not trusted (*why says why). */
long objcache_clear(char *why, size_t whylen);

/* 64-bit FNV-1a, the hash used for file names and checksums; exported so
 * callers can fold large inputs (IR text) into their keys the same way. */
uint64_t objcache_hash(const void *p, size_t n);

#endif
