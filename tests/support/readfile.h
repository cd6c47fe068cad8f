/* readfile.h - a whole file as one buffer, for the tests that read one. */
#ifndef TT_TEST_READFILE_H
#define TT_TEST_READFILE_H

#include <stddef.h>

/* The bytes of the file at path, NUL-terminated (malloc'd); their number
 * in *len unless len is NULL. Fails the test if it cannot be read. */
char *tu_read_file(const char *path, size_t *len);
/* The file rel of the source tree (TT_SOURCE_DIR), as tu_read_file. */
char *tu_read_source(const char *rel);

#endif
