/* ext_main.c - drives examples/digits.tt's DigitsNet compiled by ttc with
 * --weights-external (ext_model.o, prefix `ext`) for tests/aot/run_aot.py.
 *
 *   ext_aot DIGITS.csv COMMAND...
 *
 * Commands run in order:
 *   load:PATH   ext_load_weights(PATH): prints `load RC MESSAGE`
 *   free        ext_free_weights()
 *   forward     ext_forward on every row: prints `forward RC`, then when RC
 *               is 0 one line per row: index, label, prediction, 10 logits
 * The exit status is 0; the test reads the lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext_model.h"

#define FEATURES 64
#define CLASSES  10

static int64_t read_csv(const char *path, float **x, int **labels) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    int64_t n = 0, cap = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            *x = realloc(*x, (size_t)cap * FEATURES * sizeof **x);
            *labels = realloc(*labels, (size_t)cap * sizeof **labels);
            if (!*x || !*labels) {
                fclose(f);
                return -1;
            }
        }
        char *p = line;
        for (int j = 0; j <= FEATURES; j++) {
            double v = strtod(p, &p);
            if (j < FEATURES)
                (*x)[n * FEATURES + j] = (float)(v / 16.0);
            else
                (*labels)[n] = (int)v;
            if (*p == ',') p++;
        }
        n++;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIGITS.csv COMMAND...\n", argv[0]);
        return 2;
    }
    float *x = NULL;
    int *labels = NULL;
    int64_t n = read_csv(argv[1], &x, &labels);
    if (n < 0) return 1;
    float *y = malloc((size_t)(n ? n : 1) * CLASSES * sizeof *y);
    void *ws = malloc(ext_workspace_bytes(n) + 1);
    for (int a = 2; a < argc; a++) {
        if (strncmp(argv[a], "load:", 5) == 0) {
            char err[2048];
            memset(err, 'x', sizeof err); /* the loader must terminate it */
            int rc = ext_load_weights(argv[a] + 5, err, sizeof err);
            printf("load %d %s\n", rc, rc ? err : "");
        } else if (strcmp(argv[a], "free") == 0) {
            ext_free_weights();
        } else if (strcmp(argv[a], "forward") == 0) {
            int rc = ext_forward(x, y, n, ws);
            printf("forward %d\n", rc);
            for (int64_t i = 0; rc == EXT_OK && i < n; i++) {
                int best = 0;
                for (int c = 1; c < CLASSES; c++)
                    if (y[i * CLASSES + c] > y[i * CLASSES + best]) best = c;
                printf("%lld %d %d", (long long)i, labels[i], best);
                for (int c = 0; c < CLASSES; c++) printf(" %.9g", y[i * CLASSES + c]);
                printf("\n");
            }
        } else {
            fprintf(stderr, "unknown command '%s'\n", argv[a]);
            return 2;
        }
    }
    ext_free_weights();
    free(x);
    free(labels);
    free(y);
    free(ws);
    return 0;
}
