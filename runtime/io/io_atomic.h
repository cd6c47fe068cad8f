/* io_atomic.h - writing a file so that readers see the old contents or the
 * new, never half of it, and nobody else can steer where it goes.
 *
 * Every writer of user files (save, save_npy, fit's plot) goes through
 * io_write_atomic_fn: the data goes to a fresh temporary file in the
 * destination's directory, made by mkstemp (O_CREAT|O_EXCL: a planted
 * symlink or file at its name makes it pick another name, never follows
 * it), is fsynced and renamed over the destination. A destination that
 * exists keeps its mode; a new one gets 0666 & ~umask like any created
 * file. On every error, and when SIGINT or SIGTERM ends the process
 * (signals.h), the temporary file is removed and the destination is left
 * as it was. */
#ifndef TT_IO_ATOMIC_H
#define TT_IO_ATOMIC_H

#include <stdbool.h>
#include <stddef.h>

/* One piece of a file being written. */
typedef struct IoChunk {
    const void *data;
    size_t len;
} IoChunk;

/* Writes the contents of a file to fd (the temporary file); on failure
 * returns false with "path: message" in err. */
typedef bool (*IoWriteFn)(int fd, void *ctx, const char *path, char *err, size_t errlen);

/* Creates the temporary file, lets fn write it, then fsyncs and renames it
 * over path. False with a message naming path when anything fails, or when
 * a signal is pending (the write stops between slices: "interrupted"). */
bool io_write_atomic_fn(const char *path, IoWriteFn fn, void *ctx, char *err, size_t errlen);

/* The same for data already in memory: the chunks in order. */
bool io_write_atomic(const char *path, const IoChunk *chunks, int n, char *err, size_t errlen);

/* Writes len bytes to fd in slices, retrying short writes, and stops with
 * "interrupted" when a signal is pending: for IoWriteFn callbacks. */
bool io_write_all(int fd, const void *data, size_t len, const char *path, char *err, size_t errlen);

#endif
