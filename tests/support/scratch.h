/* scratch.h - a scratch directory for the tests that write files.
 *
 * Criterion runs each test in a process of its own, so there is one
 * directory at a time: made by a suite's .init, removed by its .fini.
 */
#ifndef TT_TEST_SCRATCH_H
#define TT_TEST_SCRATCH_H

#include <stddef.h>

/* Makes a fresh directory "<prefix>_XXXXXX" (mkdtemp); fails the test if
 * it cannot. */
void tu_scratch_make(const char *prefix);
/* Removes the directory with its files and empty subdirectories. */
void tu_scratch_remove(void);
/* The directory's path. */
const char *tu_scratch_dir(void);
/* dir/name in one of four rotating static buffers (copy what must live
 * longer). */
const char *tu_scratch_path(const char *name);
/* Writes len bytes of data to dir/name; returns its path (as
 * tu_scratch_path). */
const char *tu_write_bytes(const char *name, const void *data, size_t len);

#endif
