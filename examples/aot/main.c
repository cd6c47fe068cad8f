/* main.c - classifies handwritten digits with examples/digits.tt's model,
 * compiled ahead of time by ttc into digits_model.o (see CMakeLists.txt).
 * Nothing of tt or LLVM is linked: only the object, libc, libm, pthreads.
 *
 *   digits_aot DIGITS.csv     rows of 64 pixel values (0..16) and a label
 *
 * Prints one line per row: its index, label, predicted class and the ten
 * logits; then checks the return codes of a bad call. All rows go through
 * one call of digitsnet_forward: B is a run-time argument.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits_model.h"

#define FEATURES 64
#define CLASSES  10

/* Reads every row of a plain CSV (no header) into x (divided by 16, as
 * examples/digits.tt scales them) and labels; returns the number of rows. */
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
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIGITS.csv\n", argv[0]);
        return 2;
    }
    float *x = NULL;
    int *labels = NULL;
    int64_t n = read_csv(argv[1], &x, &labels);
    if (n < 0) return 1;
    float *y = malloc((size_t)(n ? n : 1) * CLASSES * sizeof *y);
    void *ws = malloc(digitsnet_workspace_bytes(n) + 1);
    int rc = digitsnet_forward(x, y, n, ws);
    if (rc != DIGITSNET_OK) {
        fprintf(stderr, "digitsnet_forward failed: %d\n", rc);
        return 1;
    }
    int correct = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (y[i * CLASSES + c] > y[i * CLASSES + best]) best = c;
        correct += best == labels[i];
        printf("%lld %d %d", (long long)i, labels[i], best);
        for (int c = 0; c < CLASSES; c++) printf(" %.9g", y[i * CLASSES + c]);
        printf("\n");
    }
    /* a bad dimension and a missing workspace are refused, B = 0 is fine */
    int bad = digitsnet_forward(x, y, -1, ws);
    int nows =
        digitsnet_workspace_bytes(n) ? digitsnet_forward(x, y, n, NULL) : DIGITSNET_EWORKSPACE;
    int empty = digitsnet_forward(x, y, 0, NULL);
    printf("accuracy %d/%lld\n", correct, (long long)n);
    printf("return codes: B=-1 -> %d, workspace NULL -> %d, B=0 -> %d\n", bad, nows, empty);
    free(x);
    free(labels);
    free(y);
    free(ws);
    return bad == DIGITSNET_EDIM && nows == DIGITSNET_EWORKSPACE && empty == DIGITSNET_OK ? 0 : 1;
}
