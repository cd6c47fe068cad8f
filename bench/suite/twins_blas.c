/* twins_blas.c - the OpenBLAS twin of the suite's digits MLP workloads
 * (bench/run): examples/digits.tt's DigitsNet 64-128-10 written by hand in
 * C around cblas_sgemm, timed the way bench() times tt (untimed warm-up
 * calls, then one timed call each; median, 95% half-width, minimum).
 *
 *   mlp_train       one Adam step (lr 0.01) at batch 32: forward, softmax
 *                   cross entropy, backward, update
 *   mlp_infer_b1    the forward pass at batch 1
 *   mlp_infer_b256  at batch 256
 *
 *   bench_suite_blas --threads N --runs R --warmup W
 *
 * Prints `result NAME MEDIAN_MS CI95_MS MIN_MS RUNS` per workload. Inputs
 * are random: speed only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

void openblas_set_num_threads(int);

enum { IN = 64, HID = 128, OUT = 10, TB = 32, MAXB = 256 };

typedef struct Mlp {
    float *w[4], *g[4], *m[4], *v[4]; /* w1 [IN,HID], b1, w2 [HID,OUT], b2 */
    int n[4];
    float *x, *h, *z, *dz, *dh;
    int *y;
    long t;
} Mlp;

static float *falloc(size_t n) {
    float *p = calloc(n, sizeof *p);
    if (!p) exit(1);
    return p;
}

static float urand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static void init(Mlp *m) {
    unsigned s = 1;
    int n[4] = {IN * HID, HID, HID * OUT, OUT};
    for (int i = 0; i < 4; i++) {
        m->n[i] = n[i];
        m->w[i] = falloc((size_t)n[i]);
        m->g[i] = falloc((size_t)n[i]);
        m->m[i] = falloc((size_t)n[i]);
        m->v[i] = falloc((size_t)n[i]);
        for (int k = 0; k < n[i]; k++) m->w[i][k] = 0.2f * urand(&s);
    }
    m->x = falloc((size_t)MAXB * IN);
    m->h = falloc((size_t)MAXB * HID);
    m->z = falloc((size_t)MAXB * OUT);
    m->dz = falloc((size_t)TB * OUT);
    m->dh = falloc((size_t)TB * HID);
    m->y = calloc(TB, sizeof *m->y);
    for (int k = 0; k < MAXB * IN; k++) m->x[k] = urand(&s) + 0.5f;
    for (int k = 0; k < TB; k++) m->y[k] = k % OUT;
}

/* h = relu(x w1 + b1), z = h w2 + b2 for n rows */
static void forward(Mlp *m, int n) {
    for (int r = 0; r < n; r++) memcpy(m->h + r * HID, m->w[1], HID * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HID, IN, 1, m->x, IN, m->w[0], HID, 1,
                m->h, HID);
    for (int k = 0; k < n * HID; k++) m->h[k] = m->h[k] > 0 ? m->h[k] : 0;
    for (int r = 0; r < n; r++) memcpy(m->z + r * OUT, m->w[3], OUT * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, OUT, HID, 1, m->h, HID, m->w[2], OUT,
                1, m->z, OUT);
}

static void step(Mlp *m) {
    forward(m, TB);
    /* dz = (softmax(z) - onehot(y)) / TB */
    for (int r = 0; r < TB; r++) {
        float *z = m->z + r * OUT, *d = m->dz + r * OUT, mx = z[0], s = 0;
        for (int c = 1; c < OUT; c++) mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < OUT; c++) s += d[c] = expf(z[c] - mx);
        for (int c = 0; c < OUT; c++) d[c] = (d[c] / s - (c == m->y[r])) / TB;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, HID, OUT, TB, 1, m->h, HID, m->dz, OUT, 0,
                m->g[2], OUT);
    memset(m->g[3], 0, OUT * sizeof(float));
    for (int r = 0; r < TB; r++)
        for (int c = 0; c < OUT; c++) m->g[3][c] += m->dz[r * OUT + c];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TB, HID, OUT, 1, m->dz, OUT, m->w[2], OUT,
                0, m->dh, HID);
    for (int k = 0; k < TB * HID; k++)
        if (m->h[k] <= 0) m->dh[k] = 0;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IN, HID, TB, 1, m->x, IN, m->dh, HID, 0,
                m->g[0], HID);
    memset(m->g[1], 0, HID * sizeof(float));
    for (int r = 0; r < TB; r++)
        for (int c = 0; c < HID; c++) m->g[1][c] += m->dh[r * HID + c];
    /* Adam, PyTorch's defaults: betas (0.9, 0.999), eps 1e-8 */
    m->t++;
    float c1 = 1 - powf(0.9f, (float)m->t), c2 = 1 - powf(0.999f, (float)m->t);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < m->n[i]; k++) {
            float g = m->g[i][k];
            m->m[i][k] = 0.9f * m->m[i][k] + 0.1f * g;
            m->v[i][k] = 0.999f * m->v[i][k] + 0.001f * g * g;
            m->w[i][k] -= 0.01f * (m->m[i][k] / c1) / (sqrtf(m->v[i][k] / c2) + 1e-8f);
        }
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + 1e-6 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, Mlp *m, int what, int runs, int warmup) {
    double *t = malloc((size_t)runs * sizeof *t);
    for (int k = -warmup; k < runs; k++) {
        double t0 = now_ms();
        if (what == 0)
            step(m);
        else
            forward(m, what);
        if (k >= 0) t[k] = now_ms() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_d);
    int n = runs;
    double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    double h = 0.98 * sqrt((double)n);
    int lo = (int)floor(n / 2.0 - h), hi = (int)ceil(n / 2.0 + h);
    if (lo < 0) lo = 0;
    if (hi > n - 1) hi = n - 1;
    printf("result %s %.9g %.9g %.9g %d\n", name, med, 0.5 * (t[hi] - t[lo]), t[0], runs);
    free(t);
}

static void release(Mlp *m) {
    for (int i = 0; i < 4; i++) {
        free(m->w[i]);
        free(m->g[i]);
        free(m->m[i]);
        free(m->v[i]);
    }
    free(m->x);
    free(m->h);
    free(m->z);
    free(m->dz);
    free(m->dh);
    free(m->y);
}

int main(int argc, char **argv) {
    int threads = 1, runs = 100, warmup = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--warmup") == 0)
            warmup = atoi(argv[i + 1]);
    }
    if (threads < 1 || runs < 1 || warmup < 0) {
        fprintf(stderr, "usage: %s --threads N --runs R --warmup W\n", argv[0]);
        return 2;
    }
    openblas_set_num_threads(threads);
    Mlp m = {0};
    init(&m);
    report("mlp_train", &m, 0, runs, warmup);
    report("mlp_infer_b1", &m, 1, runs, warmup);
    report("mlp_infer_b256", &m, 256, runs, warmup);
    release(&m);
    return 0;
}
