/* stderr_capture.h - what a test's code under test writes to stderr. */
#ifndef TT_TEST_STDERR_CAPTURE_H
#define TT_TEST_STDERR_CAPTURE_H

/* Sends fd 2 to the file path (made or truncated) until tu_stderr_end;
 * returns the saved fd 2. */
int tu_stderr_begin(const char *path);
/* Puts fd 2 back and returns what was written to path (a static buffer,
 * its first 4095 bytes); removes the file. */
char *tu_stderr_end(int saved, const char *path);

#endif
