/* stderr_capture.c - what a test's code under test writes to stderr
 * (stderr_capture.h). */
#include "stderr_capture.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int tu_stderr_begin(const char *path) {
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved >= 0 && fd >= 0);
    cr_assert_eq(dup2(fd, 2), 2);
    close(fd);
    return saved;
}

char *tu_stderr_end(int saved, const char *path) {
    fflush(stderr);
    cr_assert_eq(dup2(saved, 2), 2);
    close(saved);
    static char text[4096];
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    unlink(path);
    return text;
}
