/* readfile.c - a whole file as one buffer (readfile.h). */
#include "readfile.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef TT_SOURCE_DIR
#define TT_SOURCE_DIR "."
#endif

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return s;
}

char *tu_read_source(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", TT_SOURCE_DIR, rel);
    return tu_read_file(path, NULL);
}
