/* bench_decode.c - per-token decode time of a GPT with and without the KV
 * cache (generate's two paths), on the naive runtime and the JIT, against
 * the same model in PyTorch with its own KV cache (bench/decode_torch.py,
 * run in the same process tree, after tt), and an SVG plot of time per token
 * against position.
 *
 *   cached  one step of the decode graph the KV-cache pass derives
 *           (kv_decoder_step, what generate(cache=true) runs per token) at
 *           position P, the prefix already in the cache
 *   full    the forward on the P + 1 tokens of the prefix, realized (what
 *           generate(cache=false) runs per token), through the interpreter
 *
 * Each figure is a median of CPU times (the process's): of `reps` consecutive steps at P, P+1, ...
 * for cached; of `reps / 2` (at least 2) calls after two warm-up calls (the JIT's compiles) for
 * full. The model: std TinyGPT, vocab 65, d 128, 4 heads, 4 layers, ctx 640 (character level), its
 * weights from randn with seed 0, saved for PyTorch as safetensors.
 *
 *   bench_decode [--quick] [--no-torch] [--no-naive] [--threads=N]
 *                [--plot=decode.svg]
 */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_cpu.h"
#include "eval.h"
#include "jit.h"
#include "kvdecode.h"

#define VOCAB  65
#define DIM    128
#define HEADS  4
#define LAYERS 4
#define CTX    640
#define NPOS   5
static const int positions[NPOS] = {32, 64, 128, 256, 512};

/* The standard library's TinyGPT (lang/std/30_transformer.tt): the model
 * generate() decodes, with the parameter names decode_torch.py loads. */
static const char *MODEL = "let m = TinyGPT(65, 128, 4, 4, 640)\n"
                           "eval(m)\n";

/* CPU time of the process, not wall time: on a shared machine other
 * processes' load does not count, and with one thread it is the time the
 * decoding took (PyTorch's side measures the same: time.process_time). */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

typedef struct Row {
    double cached[NPOS], full[NPOS]; /* microseconds per token; NAN: not run */
} Row;

static int32_t ids[CTX];

/* The forward on ids[0..t), realized. */
static void forward(Interp *I, Value m, int t) {
    Tensor *x = rt_tensor_uninit(I, TY_I32, shape_make(2, (int64_t[]){1, t}));
    memcpy(rt_data(I, x), ids, (size_t)t * sizeof *ids);
    Value arg = vtensor(x);
    Value y = rt_call(I, m, &arg, 1, NULL, NULL, 0);
    rt_release(I, arg);
    (void)rt_data(I, (Tensor *)y.o);
    rt_release(I, y);
}

static bool measure(Interp *I, int reps, Row *r) {
    Value m = *env_find_local(I->ev.globals, "m");
    jmp_buf jb;
    rt_set_on_error(I, &jb);
    if (setjmp(jb)) {
        fprintf(stderr, "bench_decode: the model failed\n");
        return false;
    }
    KvDecoder kd;
    char why[256];
    if (!kv_decoder_init(I, m, 1, CTX, &kd, why, sizeof why)) {
        fprintf(stderr, "bench_decode: no KV cache: %s\n", why);
        return false;
    }
    double *ts = malloc((size_t)reps * sizeof *ts);
    int p = 0;
    for (int k = 0; k < NPOS; k++) {
        for (; p < positions[k]; p++) kv_decoder_step(I, &kd, &ids[p], p);
        for (int j = 0; j < reps; j++, p++) {
            double t0 = now();
            kv_decoder_step(I, &kd, &ids[p], p);
            ts[j] = 1e6 * (now() - t0);
        }
        r->cached[k] = median(ts, reps);
    }
    kv_decoder_free(&kd);
    int fr = reps / 2 > 2 ? reps / 2 : 2;
    for (int k = 0; k < NPOS; k++) {
        for (int w = 0; w < 2; w++) /* warm-up: the JIT compiles this length */
            forward(I, m, positions[k] + 1);
        int64_t c0 = rt_backend_stats(I).compiles;
        for (int j = 0; j < fr; j++) {
            double t0 = now();
            forward(I, m, positions[k] + 1);
            ts[j] = 1e6 * (now() - t0);
        }
        r->full[k] = median(ts, fr);
        if (rt_backend_stats(I).compiles != c0)
            fprintf(stderr, "bench_decode: the JIT compiled %lld graphs while timing position %d\n",
                    (long long)(rt_backend_stats(I).compiles - c0), positions[k]);
    }
    free(ts);
    rt_set_on_error(I, NULL);
    return true;
}

static bool run_torch(const char *weights, int threads, int reps, Row *r, char *version,
                      size_t vlen) {
    char cmd[1024], line[256];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/bench/decode_torch.py --weights %s --config %d,%d,%d,%d,%d "
             "--positions 32,64,128,256,512 --threads %d --reps %d 2>&1",
             TT_SOURCE_DIR, weights, VOCAB, DIM, HEADS, LAYERS, CTX, threads, reps);
    FILE *p = popen(cmd, "r");
    if (!p) return false;
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        char what[16];
        int pos;
        double us;
        if (sscanf(line, "torch version %63s", version) == 1) continue;
        if (sscanf(line, "%15s %d %lf", what, &pos, &us) == 3)
            for (int k = 0; k < NPOS; k++)
                if (positions[k] == pos) {
                    if (strcmp(what, "cached") == 0) r->cached[k] = us, got++;
                    if (strcmp(what, "full") == 0) r->full[k] = us, got++;
                }
        if (!strstr(line, "cached ") && !strstr(line, "full ")) fprintf(stderr, "torch: %s", line);
    }
    (void)vlen;
    return pclose(p) == 0 && got > 0;
}

/* -- the plot: time per token (log scale) against position -- */

static void plot(const char *path, const Row *rows, const char *const *names, int nrows) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    const double W = 720, H = 420, L = 70, R = 190, T = 30, B = 45;
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < nrows; i++)
        for (int k = 0; k < NPOS; k++) {
            double v[2] = {rows[i].cached[k], rows[i].full[k]};
            for (int j = 0; j < 2; j++)
                if (v[j] > 0) lo = fmin(lo, v[j]), hi = fmax(hi, v[j]);
        }
    if (!(hi > lo)) hi = lo * 10;
    double llo = floor(log10(lo)), lhi = ceil(log10(hi));
    if (lhi <= llo) lhi = llo + 1;
#define PX(k) (L + (W - L - R) * (k) / (NPOS - 1))
#define PY(v) (H - B - (H - B - T) * (log10(v) - llo) / (lhi - llo))
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"%g\" height=\"%g\" "
            "fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f,
            "<text x=\"%g\" y=\"18\" text-anchor=\"middle\">time per token vs position (GPT d=%d, "
            "%d layers; log scale)</text>\n",
            (W - R + L) / 2, DIM, LAYERS);
    fprintf(f, "<path d=\"M%g %g V%g H%g\" fill=\"none\" stroke=\"black\"/>\n", L, T, H - B, W - R);
    for (double e = llo; e <= lhi; e++) {
        double y = PY(pow(10, e));
        fprintf(f, "<path d=\"M%g %g H%g\" stroke=\"#ddd\"/>\n", L, y, W - R);
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%g ms</text>\n", L - 6, y + 4,
                pow(10, e) / 1000);
    }
    for (int k = 0; k < NPOS; k++)
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%d</text>\n", PX(k), H - B + 16,
                positions[k]);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">position</text>\n", (L + W - R) / 2,
            H - 8);
    static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
    int line = 0;
    for (int i = 0; i < nrows; i++)
        for (int c = 0; c < 2; c++) {
            const double *v = c == 0 ? rows[i].cached : rows[i].full;
            if (!(v[0] > 0)) continue;
            const char *color = colors[i % 4];
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                    color, c ? " stroke-dasharray=\"6 4\"" : "");
            for (int k = 0; k < NPOS; k++)
                if (v[k] > 0) fprintf(f, "%s%.1f,%.1f", k ? " " : "", PX(k), PY(v[k]));
            fprintf(f, "\"/>\n");
            double y = T + 10 + 18 * line++;
            fprintf(f,
                    "<path d=\"M%g %g h24\" stroke=\"%s\" stroke-width=\"2\"%s/><text x=\"%g\" "
                    "y=\"%g\">%s %s</text>\n",
                    W - R + 10, y, color, c ? " stroke-dasharray=\"6 4\"" : "", W - R + 40, y + 4,
                    names[i], c ? "no cache" : "KV cache");
        }
    fprintf(f, "</svg>\n");
    fclose(f);
#undef PX
#undef PY
}

int main(int argc, char **argv) {
    bool quick = false, torch = true, naive = true;
    int threads = 1;
    const char *plot_path = "decode.svg";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--no-torch") == 0)
            torch = false;
        else if (strcmp(argv[i], "--no-naive") == 0)
            naive = false;
        else if (strncmp(argv[i], "--threads=", 10) == 0)
            threads = atoi(argv[i] + 10);
        else if (strncmp(argv[i], "--plot=", 7) == 0)
            plot_path = argv[i] + 7;
        else {
            fprintf(stderr, "usage: bench_decode [--quick] [--no-torch] [--no-naive] "
                            "[--threads=N] [--plot=decode.svg]\n");
            return 2;
        }
    }
    setenv("TT_CACHE_DIR", "off", 1);
    int reps = quick ? 4 : 8;
    bench_print_cpu();
    printf("GPT vocab %d, d %d, %d heads, %d layers, ctx %d; batch 1, %d thread%s\n", VOCAB, DIM,
           HEADS, LAYERS, CTX, threads, threads == 1 ? "" : "s");
    Rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < CTX; i++) ids[i] = (int32_t)(rng_next(&r) % VOCAB);

    Row rows[3];
    const char *names[3];
    int nrows = 0;
    char weights[] = "/tmp/bench_decode_XXXXXX";
    int fd = mkstemp(weights);
    if (fd >= 0) close(fd);
    for (int b = naive ? 0 : 1; b < 2; b++) {
        Interp *I = rt_new_interp();
        rt_set_backend(I, b == 0 ? "naive" : "jit");
        RtConfig cfg = *rt_config(I);
        cfg.threads = threads;
        rt_configure(I, &cfg);
        if (rt_run_source(I, "decode.tt", MODEL, strlen(MODEL), false) != 0) return 1;
        if (b == 1) {
            char src[256];
            snprintf(src, sizeof src, "save(m, \"%s\")\n", weights);
            if (rt_run_source(I, "save.tt", src, strlen(src), false) != 0) return 1;
        }
        Row *row = &rows[nrows];
        if (!measure(I, reps, row)) return 1;
        names[nrows++] = b == 0 ? "tt naive" : "tt jit";
        rt_free_interp(I);
    }
    char version[64] = "";
    if (torch) {
        Row *row = &rows[nrows];
        for (int k = 0; k < NPOS; k++) row->cached[k] = row->full[k] = NAN;
        if (run_torch(weights, threads, reps, row, version, sizeof version))
            names[nrows++] = "PyTorch";
        else
            printf("PyTorch: not run (bench/decode_torch.py failed or torch is absent)\n");
    }
    unlink(weights);

    printf("\nCPU microseconds per token (median), and tokens per second with the cache\n");
    printf("%-10s", "position");
    for (int i = 0; i < nrows; i++) printf(" %12s %12s", names[i], "");
    printf("\n%-10s", "");
    for (int i = 0; i < nrows; i++) printf(" %12s %12s", "cached", "no cache");
    printf("  jit speed-up  jit tok/s  torch/tt (cached)\n");
    int jit = naive ? 1 : 0, pt = nrows > jit + 1 ? jit + 1 : -1;
    for (int k = 0; k < NPOS; k++) {
        printf("%-10d", positions[k]);
        for (int i = 0; i < nrows; i++)
            printf(" %12.1f %12.1f", rows[i].cached[k], rows[i].full[k]);
        printf("  %11.1fx %10.0f", rows[jit].full[k] / rows[jit].cached[k],
               1e6 / rows[jit].cached[k]);
        if (pt >= 0) printf("  %17.2fx", rows[pt].cached[k] / rows[jit].cached[k]);
        printf("\n");
    }
    if (naive) {
        printf("naive speed-up with the cache:");
        for (int k = 0; k < NPOS; k++)
            printf(" %d: %.1fx", positions[k], rows[0].full[k] / rows[0].cached[k]);
        printf("\n");
    }
    if (version[0]) printf("PyTorch %s, /usr/bin/python3 bench/decode_torch.py\n", version);
    plot(plot_path, rows, names, nrows);
    printf("plot: %s\n", plot_path);
    return 0;
}
