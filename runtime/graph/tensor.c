/* tensor.c - data buffers, tensor objects, NumPy-style tensor printing. */
#include "capture.h"
#include "graph.h"
#include "bufalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- buffers -- */

/* NULL when the memory is not there (the caller reports it). */
Buffer *rt_buf_try_new(size_t nbytes) {
    Buffer *b = rt_buf_try_uninit(nbytes);
    if (b) memset(b->data, 0, (nbytes + 63) & ~(size_t)63);
    return b;
}

/* Contents undefined: for buffers written whole right away (graph outputs,
 * loaded files), where zeroing would be one more pass over the memory. */
/* Bytes of tensor data held now, and the most held at once since the last
 * rt_mem_peak_reset (profile blocks' peak_mb). */
static size_t mem_live, mem_peak;

size_t rt_mem_peak_reset(void) {
    mem_peak = mem_live;
    return mem_peak;
}

size_t rt_mem_peak(void) {
    return mem_peak;
}

size_t rt_mem_live(void) {
    return mem_live;
}

Buffer *rt_buf_try_uninit(size_t nbytes) {
    if (nbytes > ((size_t)1 << 46)) return NULL;
    size_t n = (nbytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    void *data = rt_data_alloc(n);
    if (!data) return NULL;
    Buffer *b = tt_xmalloc(sizeof(Buffer));
    b->data = data;
    b->nbytes = nbytes;
    b->refcount = 1;
    b->own = true;
    mem_live += nbytes;
    if (mem_live > mem_peak) mem_peak = mem_live;
    return b;
}

Buffer *rt_buf_new(size_t nbytes) {
    Buffer *b = rt_buf_try_new(nbytes);
    if (!b) {
        fprintf(stderr, "tt: fatal: out of memory allocating %zu bytes\n", nbytes);
        abort();
    }
    return b;
}

/* A buffer for a tensor of type dt[s], or rt_error naming its size. */
static Buffer *buf_for(Interp *I, DType dt, const Shape *s, bool zero) {
    int64_t numel = 1;
    bool overflow = false;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] < 0)
            overflow = true;
        else if (s->d[i] > 0 && numel > ((int64_t)1 << 50) / s->d[i])
            overflow = true;
        else
            numel *= s->d[i];
    }
    size_t bytes = (size_t)numel * dtype_size(dt);
    Buffer *b = overflow ? NULL : zero ? rt_buf_try_new(bytes) : rt_buf_try_uninit(bytes);
    if (!b) {
        char sh[128];
        rt_error(I, "out of memory: a %s%s tensor needs %.1f GB", dtype_name(dt),
                 shape_str(s, sh, sizeof sh),
                 overflow ? INFINITY : (double)numel * (double)dtype_size(dt) / 1e9);
    }
    return b;
}

Buffer *rt_buf_for(Interp *I, DType dt, const Shape *s) {
    return buf_for(I, dt, s, true);
}

void rt_buf_release(Buffer *b) {
    if (!b) return;
    TT_ASSERT(b->refcount > 0);
    if (--b->refcount > 0) return;
    mem_live -= b->nbytes;
    if (b->own)
        rt_data_free(b->data, (b->nbytes + 63) & ~(size_t)63);
    else
        free(b->data);
    free(b);
}

/* -- tensor objects -- */

static Tensor *tensor_alloc(Interp *I, DType dt, Shape s) {
    Tensor *t = rt_alloc_obj(I, V_TENSOR, sizeof(Tensor));
    t->dtype = dt;
    t->shape = s;
    t->node = -1;
    t->serial = rt_serial++;
    return t;
}

Tensor *rt_tensor_new(Interp *I, DType dt, Shape s) {
    Buffer *b = rt_buf_for(I, dt, &s);
    Tensor *t = tensor_alloc(I, dt, s);
    t->buf = b;
    return t;
}

Tensor *rt_tensor_uninit(Interp *I, DType dt, Shape s) {
    Buffer *b = buf_for(I, dt, &s, false);
    Tensor *t = tensor_alloc(I, dt, s);
    t->buf = b;
    return t;
}

Tensor *rt_tensor_from_buf(Interp *I, DType dt, Shape s, Buffer *buf) {
    TT_ASSERT(buf && buf->nbytes >= (size_t)shape_numel(&s) * dtype_size(dt));
    Tensor *t = tensor_alloc(I, dt, s);
    buf->refcount++;
    t->buf = buf;
    return t;
}

Tensor *rt_tensor_lazy(Interp *I, int id) {
    TT_ASSERT(id >= 0 && id < I->lz.g.n);
    const IrNode *n = ir_node(&I->lz.g, id);
    Tensor *t = tensor_alloc(I, n->dtype, n->shape);
    t->node = id;
    t->node_gen = I->lz.gen;
    rt_lazy_link(I, t);
    return t;
}

Tensor *rt_tensor_scalar(Interp *I, DType dt, double x) {
    Tensor *t = rt_tensor_new(I, dt, shape_scalar());
    switch (dt) {
    case TY_F32:
        *(float *)t->buf->data = (float)x;
        break;
    case TY_I32:
        *(int32_t *)t->buf->data = sat_i32(x); /* as a CONST converts it */
        break;
    case TY_I8:
        *(int8_t *)t->buf->data = sat_i8(x);
        break;
    default:
        TT_UNREACHABLE();
    }
    return t;
}

void rt_lazy_link(Interp *I, Tensor *t) {
    if (t->lazy_prev || t->lazy_next || I->lz.lazy == t) return;
    t->lazy_next = I->lz.lazy;
    if (I->lz.lazy) I->lz.lazy->lazy_prev = t;
    I->lz.lazy = t;
}

void rt_lazy_unlink(Interp *I, Tensor *t) {
    if (!(t->lazy_prev || t->lazy_next || I->lz.lazy == t)) return;
    if (t->lazy_prev)
        t->lazy_prev->lazy_next = t->lazy_next;
    else
        I->lz.lazy = t->lazy_next;
    if (t->lazy_next) t->lazy_next->lazy_prev = t->lazy_prev;
    t->lazy_prev = t->lazy_next = NULL;
}

void rt_register_param(Interp *I, Tensor *t) {
    t->requires_grad = true;
    TT_VEC_PUSH(I->lz.params, I->lz.nparams, I->lz.capparams, t);
}

static void unregister_param(Interp *I, Tensor *t) {
    for (int i = I->lz.nparams - 1; i >= 0; i--) {
        if (I->lz.params[i] == t) {
            memmove(&I->lz.params[i], &I->lz.params[i + 1],
                    (size_t)(I->lz.nparams - i - 1) * sizeof *I->lz.params);
            I->lz.nparams--;
            return;
        }
    }
}

void rt_tensor_free(Interp *I, Tensor *t) {
    if (!I->ev.freeing) {
        rt_lazy_unlink(I, t);
        if (t->requires_grad) unregister_param(I, t);
        if (t->grad) rt_release(I, vtensor(t->grad));
        if (t->mask) rt_release(I, vtensor(t->mask));
    }
    rt_buf_release(t->buf);
    t->buf = NULL;
}

/* -- printing, after NumPy's array2string (precision 4, no line wrap) -- */

typedef struct Fmt {
    DType dtype;
    bool exp;         /* scientific notation */
    int ipart, fpart; /* widths of the integer and fraction parts */
    int width;        /* total width (ints, exp, nan/inf) */
} Fmt;

static double elem(const Tensor *t, const void *d, int64_t i) {
    switch (t->dtype) {
    case TY_F32:
        return ((const float *)d)[i];
    case TY_I32:
        return ((const int32_t *)d)[i];
    default:
        return ((const int8_t *)d)[i];
    }
}

/* Positional digits of x with at most 4 decimals, trailing zeros trimmed,
 * the point kept: "1.", "0.5", "-2.25". */
static void fmt_fixed(double x, char *buf, size_t n) {
    snprintf(buf, n, "%.4f", x);
    char *dot = strchr(buf, '.');
    if (!dot) return;
    char *e = buf + strlen(buf) - 1;
    while (e > dot && *e == '0') *e-- = 0;
    if (strcmp(buf, "-0.") == 0 && x > -0.00005) strcpy(buf, "-0.");
}

/* Scientific: "1.e-05", "1.5e+03" (mantissa with at most 4 decimals). */
static void fmt_exp(double x, char *buf, size_t n) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.4e", x);
    char *e = strchr(tmp, 'e');
    char mant[32];
    size_t ml = (size_t)(e - tmp);
    memcpy(mant, tmp, ml);
    mant[ml] = 0;
    char *m = mant + ml - 1;
    while (*m == '0') *m-- = 0;
    snprintf(buf, n, "%s%s", mant, e);
}

static void fmt_special(double x, char *buf, size_t n) {
    snprintf(buf, n, "%s", isnan(x) ? "nan" : x < 0 ? "-inf" : "inf");
}

/* Formats one element (without padding). */
static void fmt_elem(const Fmt *f, double x, char *buf, size_t n) {
    if (f->dtype != TY_F32) {
        snprintf(buf, n, "%lld", (long long)x);
        return;
    }
    if (!isfinite(x))
        fmt_special(x, buf, n);
    else if (f->exp)
        fmt_exp(x, buf, n);
    else
        fmt_fixed(x, buf, n);
}

/* Visits the elements that will be shown (all, or the edges when summarized). */
typedef void (*ElemFn)(void *ctx, double x);

static void visit(const Tensor *t, const void *d, int dim, int64_t off, bool summ, ElemFn fn,
                  void *ctx) {
    const Shape *s = &t->shape;
    if (dim == s->ndim) {
        fn(ctx, elem(t, d, off));
        return;
    }
    int64_t stride = 1;
    for (int k = dim + 1; k < s->ndim; k++) stride *= s->d[k];
    int64_t n = s->d[dim];
    for (int64_t i = 0; i < n; i++) {
        if (summ && n > 6 && i == 3) i = n - 3;
        visit(t, d, dim + 1, off + i * stride, summ, fn, ctx);
    }
}

typedef struct Stats {
    bool any_finite_nonzero, all_int;
    double maxabs, minabs;
} Stats;

static void stats_fn(void *ctx, double x) {
    Stats *st = ctx;
    if (!isfinite(x)) return;
    if (x != floor(x)) st->all_int = false;
    double a = fabs(x);
    if (a == 0) return;
    if (!st->any_finite_nonzero || a > st->maxabs) st->maxabs = a;
    if (!st->any_finite_nonzero || a < st->minabs) st->minabs = a;
    st->any_finite_nonzero = true;
}

typedef struct WidthCtx {
    Fmt *f;
} WidthCtx;

static void width_fn(void *ctx, double x) {
    Fmt *f = ((WidthCtx *)ctx)->f;
    char buf[64];
    fmt_elem(f, x, buf, sizeof buf);
    int len = (int)strlen(buf);
    if (f->dtype == TY_F32 && !f->exp && isfinite(x)) {
        const char *dot = strchr(buf, '.');
        int ip = (int)(dot - buf), fp = len - ip - 1;
        if (ip > f->ipart) f->ipart = ip;
        if (fp > f->fpart) f->fpart = fp;
    } else if (len > f->width) {
        f->width = len;
    }
}

static void put_elem(const Fmt *f, double x, StrBuf *out) {
    char buf[64];
    fmt_elem(f, x, buf, sizeof buf);
    int len = (int)strlen(buf);
    if (f->dtype == TY_F32 && !f->exp && isfinite(x)) {
        const char *dot = strchr(buf, '.');
        int ip = (int)(dot - buf), fp = len - ip - 1;
        int total = f->ipart + 1 + f->fpart;
        int extra = f->width > total ? f->width - total : 0;
        for (int i = ip; i < f->ipart + extra; i++) sb_putc(out, ' ');
        sb_puts(out, buf);
        for (int i = fp; i < f->fpart; i++) sb_putc(out, ' ');
    } else {
        int w = f->width;
        if (f->dtype == TY_F32 && !f->exp) {
            int total = f->ipart + 1 + f->fpart;
            if (total > w) w = total;
        }
        for (int i = len; i < w; i++) sb_putc(out, ' ');
        sb_puts(out, buf);
    }
}

static void put_array(const Tensor *t, const void *d, const Fmt *f, int dim, int64_t off, bool summ,
                      StrBuf *out) {
    const Shape *s = &t->shape;
    int nd = s->ndim;
    if (dim == nd) {
        put_elem(f, elem(t, d, off), out);
        return;
    }
    int64_t stride = 1;
    for (int k = dim + 1; k < nd; k++) stride *= s->d[k];
    int64_t n = s->d[dim];
    sb_putc(out, '[');
    for (int64_t i = 0; i < n; i++) {
        if (i > 0) {
            if (dim == nd - 1) {
                sb_putc(out, ' ');
            } else {
                for (int k = 0; k < nd - dim - 1; k++) sb_putc(out, '\n');
                for (int k = 0; k <= dim; k++) sb_putc(out, ' ');
            }
        }
        if (summ && n > 6 && i == 3) {
            if (dim == nd - 1) {
                sb_puts(out, "...");
                sb_putc(out, ' ');
            } else {
                sb_puts(out, "...");
                for (int k = 0; k < nd - dim - 1; k++) sb_putc(out, '\n');
                for (int k = 0; k <= dim; k++) sb_putc(out, ' ');
            }
            i = n - 3;
        }
        put_array(t, d, f, dim + 1, off + i * stride, summ, out);
    }
    sb_putc(out, ']');
}

void rt_format_tensor(Interp *I, Tensor *t, StrBuf *out) {
    const void *d = rt_data(I, t);
    int64_t numel = shape_numel(&t->shape);
    bool summ = numel > 1000;
    Fmt f = {.dtype = t->dtype};
    if (t->dtype == TY_F32) {
        Stats st = {.all_int = true};
        visit(t, d, 0, 0, summ, stats_fn, &st);
        if (st.any_finite_nonzero &&
            (st.maxabs >= 1e8 || st.minabs < 0.0001 || st.maxabs / st.minabs > 1000))
            f.exp = true;
        (void)st.all_int; /* fmt_fixed already prints integers as "1." */
    }
    if (numel == 0) {
        for (int k = 0; k < t->shape.ndim; k++) sb_putc(out, '[');
        for (int k = 0; k < t->shape.ndim; k++) sb_putc(out, ']');
        if (t->shape.ndim == 0) sb_puts(out, "[]");
        return;
    }
    WidthCtx wc = {&f};
    visit(t, d, 0, 0, summ, width_fn, &wc);
    if (t->shape.ndim == 0) {
        char buf[64];
        fmt_elem(&f, elem(t, d, 0), buf, sizeof buf);
        sb_puts(out, buf);
        return;
    }
    put_array(t, d, &f, 0, 0, summ, out);
}
