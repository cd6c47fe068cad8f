/* input.h - reading input (sources, data files, in-memory test data) under
 * the input limit.
 *
 * Every byte tt reads from a file goes through a TtInput: it refuses what
 * it cannot read safely (a directory; for data files anything but a regular
 * file, so /dev/zero or a FIFO fails at once instead of blocking or never
 * ending), gunzips ".gz" sources as a stream, and stops any source at the
 * input limit, so a small .gz that inflates to gigabytes is an error naming
 * the file, not an abort when memory runs out.
 *
 * The limit is TT_MAX_INPUT_BYTES when set (a number of bytes, optionally
 * with a K, M, G or T suffix for binary multiples: 1048576, 512M, 4G), else
 * the smaller of 4 GiB and half of the physical memory. A malformed value is
 * an error at every read, never silently replaced by the default.
 */
#ifndef TT_INPUT_H
#define TT_INPUT_H

#include "util.h"

typedef struct TtInput TtInput;

/* The input limit in bytes; false (message in err) when TT_MAX_INPUT_BYTES
 * is malformed. */
bool tt_input_limit(uint64_t *limit, char *err, size_t errlen);

/* "812 bytes", "1.0 MiB", "4.0 GiB" into buf; returns buf. */
const char *tt_format_bytes(uint64_t n, char *buf, size_t len);

/* Opens path for reading. data: the file must be a regular file (data
 * files); otherwise pipes and devices are read too (a script given as
 * <(cmd)), directories never. A name ending in ".gz" is gunzipped when it
 * starts with the gzip magic (other bytes pass through unchanged, as zlib's
 * gzread does). NULL with a message "<path>: ..." in err on failure. */
TtInput *tt_input_open(const char *path, bool data, char *err, size_t errlen);

/* The same over len bytes in memory (borrowed until close); name is used
 * in messages and, ending in ".gz", asks for gunzipping. */
TtInput *tt_input_memory(const char *name, const void *data, size_t len, char *err, size_t errlen);

void tt_input_close(TtInput *in);

/* The source's name as given, and the limit it is read under. */
const char *tt_input_name(const TtInput *in);
uint64_t tt_input_max(const TtInput *in);

/* Whether the size of what the source yields is known before reading it
 * (neither compressed nor a pipe): then a reader may read to the end and
 * report exact sizes rather than stop where a header says the data ends. */
bool tt_input_size_known(const TtInput *in);

/* Reads up to n bytes into buf; *got < n only at the end of the input.
 * False with a message in err on a read error, corrupt gzip data, or when
 * the input goes past the limit. */
bool tt_input_read(TtInput *in, void *buf, size_t n, size_t *got, char *err, size_t errlen);

/* Appends to b until it holds `upto` bytes (UINT64_MAX: the whole input) or
 * the input ends. b grows only as data arrives, from the source's size (a
 * gzip trailer's ISIZE is a hint, never trusted further), so a header that
 * claims gigabytes costs nothing until they are there. b->s stays
 * NUL-terminated. On failure b keeps what it had (the caller frees it). */
bool tt_input_fill(TtInput *in, StrBuf *b, uint64_t upto, char *err, size_t errlen);

/* tt_read_file (util.h) for data files: regular files only. */
char *tt_read_data_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
