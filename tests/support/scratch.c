/* scratch.c - a scratch directory for the tests that write files
 * (scratch.h). */
#include "scratch.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

void tu_scratch_make(const char *prefix) {
    snprintf(dir, sizeof dir, "%s_XXXXXX", prefix);
    cr_assert_not_null(mkdtemp(dir));
}

void tu_scratch_remove(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    closedir(d);
    rmdir(dir);
}

const char *tu_scratch_dir(void) {
    return dir;
}

const char *tu_scratch_path(const char *name) {
    static char bufs[4][600];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

const char *tu_write_bytes(const char *name, const void *data, size_t len) {
    const char *p = tu_scratch_path(name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    if (len) cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    return p;
}
