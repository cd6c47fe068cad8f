/* attr.c - the attribute fields of IrAttr, described once.
 *
 * Each op declares in ops.def (its attrs column) which fields it reads.
 * Canonicalizing (ir_add), hashing, comparing (the JIT's cache), printing
 * and verifying a node are each one loop over the fields of that mask,
 * through the table below, so a new op's attributes are handled everywhere
 * by declaring them in its row, and a new field by one line here.
 */
#include "ir.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

typedef enum FieldKind {
    FK_AXES,     /* uint32_t bit mask, printed as the list of set bits */
    FK_INT,      /* int */
    FK_BOOL,     /* bool */
    FK_DTYPE,    /* DType */
    FK_DOUBLE,   /* double, compared and hashed by its bits */
    FK_I64,      /* int64_t */
    FK_PAIR,     /* int64_t[2]: a window's height and width */
    FK_SHAPE,    /* Shape */
    FK_DIMS_INT, /* int[IR_MAXDIM], one per dim of the first input */
    FK_DIMS_I64, /* int64_t[IR_MAXDIM], one per dim of the first input */
} FieldKind;

typedef struct Field {
    unsigned bit;
    const char *name; /* as printed */
    FieldKind kind;
    size_t off;
} Field;

/* In the order they print. */
static const Field fields[] = {
    {AT_AXES, "axes", FK_AXES, offsetof(IrAttr, axes)},
    {AT_AXIS, "axis", FK_INT, offsetof(IrAttr, axis)},
    {AT_KEEPDIMS, "keepdims", FK_BOOL, offsetof(IrAttr, keepdims)},
    {AT_REVERSE, "reverse", FK_BOOL, offsetof(IrAttr, reverse)},
    {AT_PERM, "perm", FK_DIMS_INT, offsetof(IrAttr, perm)},
    {AT_SHAPE, "shape", FK_SHAPE, offsetof(IrAttr, shape)},
    {AT_START, "start", FK_DIMS_I64, offsetof(IrAttr, start)},
    {AT_STOP, "stop", FK_DIMS_I64, offsetof(IrAttr, stop)},
    {AT_STEP, "step", FK_DIMS_I64, offsetof(IrAttr, step)},
    {AT_KERNEL, "kernel", FK_PAIR, offsetof(IrAttr, win.kernel)},
    {AT_STRIDE, "stride", FK_PAIR, offsetof(IrAttr, win.stride)},
    {AT_PADDING, "padding", FK_PAIR, offsetof(IrAttr, win.padding)},
    {AT_DILATION, "dilation", FK_PAIR, offsetof(IrAttr, win.dilation)},
    {AT_GROUPS, "groups", FK_I64, offsetof(IrAttr, win.groups)},
    {AT_DTYPE, "dtype", FK_DTYPE, offsetof(IrAttr, dtype)},
    {AT_CAUSAL, "causal", FK_BOOL, offsetof(IrAttr, causal)},
    {AT_SCALE, "scale", FK_DOUBLE, offsetof(IrAttr, scale)},
    {AT_VALUE, "value", FK_DOUBLE, offsetof(IrAttr, value)},
    {AT_INDEX, "index", FK_INT, offsetof(IrAttr, index)},
};
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

/* Every AT_ bit has exactly one field. */
_Static_assert(NFIELDS == 19 && AT__ALL == (1 << 19) - 1, "one fields[] row per AT_ bit");

static int clamp_rank(int rank) {
    return rank < 0 ? 0 : rank > IR_MAXDIM ? IR_MAXDIM : rank;
}

/* How many bytes of a field are the op's (the per-dim arrays: rank entries;
 * a shape: its ndim and its dims). */
static size_t field_bytes(const Field *f, const IrAttr *a, int rank) {
    switch (f->kind) {
    case FK_AXES:
        return sizeof a->axes;
    case FK_INT:
        return sizeof(int);
    case FK_BOOL:
        return sizeof(bool);
    case FK_DTYPE:
        return sizeof(DType);
    case FK_DOUBLE:
        return sizeof(double);
    case FK_I64:
        return sizeof(int64_t);
    case FK_PAIR:
        return 2 * sizeof(int64_t);
    case FK_SHAPE: {
        const Shape *s = (const Shape *)((const char *)a + f->off);
        int nd = clamp_rank(s->ndim);
        return offsetof(Shape, d) + (size_t)nd * sizeof(int64_t);
    }
    case FK_DIMS_INT:
        return (size_t)rank * sizeof(int);
    case FK_DIMS_I64:
        return (size_t)rank * sizeof(int64_t);
    }
    return 0;
}

int ir_attr_rank(const IrGraph *g, const IrNode *n) {
    return n->nin > 0 && n->in ? clamp_rank(g->nodes[n->in[0]].shape.ndim) : 0;
}

IrAttr ir_attr_canonical(const IrAttr *a, unsigned mask, int rank) {
    IrAttr c;
    memset(&c, 0, sizeof c); /* padding too: canonical attributes compare by bytes */
    rank = clamp_rank(rank);
    for (int i = 0; i < NFIELDS; i++)
        if (mask & fields[i].bit)
            memcpy((char *)&c + fields[i].off, (const char *)a + fields[i].off,
                   field_bytes(&fields[i], a, rank));
    return c;
}

static int64_t load(const void *p, size_t size) {
    switch (size) {
    case 1: {
        uint8_t v;
        memcpy(&v, p, 1);
        return v;
    }
    case 4: {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default: {
        int64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
}

int ir_attr_words(const IrAttr *a, unsigned mask, int rank, int64_t *w) {
    rank = clamp_rank(rank);
    int n = 0;
    for (int i = 0; i < NFIELDS; i++) {
        const Field *f = &fields[i];
        if (!(mask & f->bit)) continue;
        const char *p = (const char *)a + f->off;
        switch (f->kind) {
        case FK_AXES:
            w[n++] = a->axes;
            break;
        case FK_INT:
        case FK_DTYPE:
            w[n++] = load(p, 4);
            break;
        case FK_BOOL:
            w[n++] = *(const bool *)p;
            break;
        case FK_DOUBLE:
        case FK_I64:
            w[n++] = load(p, 8);
            break;
        case FK_PAIR:
            w[n++] = load(p, 8);
            w[n++] = load(p + 8, 8);
            break;
        case FK_SHAPE: {
            const Shape *s = (const Shape *)p;
            w[n++] = s->ndim;
            for (int k = 0; k < clamp_rank(s->ndim); k++) w[n++] = s->d[k];
            break;
        }
        case FK_DIMS_INT:
            for (int k = 0; k < rank; k++) w[n++] = ((const int *)p)[k];
            break;
        case FK_DIMS_I64:
            for (int k = 0; k < rank; k++) w[n++] = ((const int64_t *)p)[k];
            break;
        }
    }
    TT_ASSERT(n <= IR_ATTR_MAXWORDS);
    return n;
}

bool ir_attr_eq(const IrAttr *a, const IrAttr *b, unsigned mask, int rank) {
    int64_t wa[IR_ATTR_MAXWORDS], wb[IR_ATTR_MAXWORDS];
    int na = ir_attr_words(a, mask, rank, wa), nb = ir_attr_words(b, mask, rank, wb);
    return na == nb && memcmp(wa, wb, (size_t)na * sizeof *wa) == 0;
}

static void put_ints(StrBuf *b, const char *key, const int64_t *v, int n) {
    sb_printf(b, " %s=[", key);
    for (int i = 0; i < n; i++) sb_printf(b, "%s%lld", i ? ", " : "", (long long)v[i]);
    sb_putc(b, ']');
}

void ir_attr_print(StrBuf *b, const IrAttr *a, unsigned mask, int rank) {
    rank = clamp_rank(rank);
    for (int i = 0; i < NFIELDS; i++) {
        const Field *f = &fields[i];
        if (!(mask & f->bit)) continue;
        const char *p = (const char *)a + f->off;
        switch (f->kind) {
        case FK_AXES: {
            sb_printf(b, " %s=[", f->name);
            int k = 0;
            for (int d = 0; d < 32; d++)
                if (a->axes >> d & 1u) sb_printf(b, "%s%d", k++ ? ", " : "", d);
            sb_putc(b, ']');
            break;
        }
        case FK_INT:
            sb_printf(b, " %s=%d", f->name, *(const int *)p);
            break;
        case FK_BOOL:
            sb_printf(b, " %s=%s", f->name, *(const bool *)p ? "true" : "false");
            break;
        case FK_DTYPE:
            sb_printf(b, " %s=%s", f->name, dtype_name(*(const DType *)p));
            break;
        case FK_DOUBLE:
            sb_printf(b, " %s=%.9g", f->name, *(const double *)p);
            break;
        case FK_I64:
            sb_printf(b, " %s=%lld", f->name, (long long)*(const int64_t *)p);
            break;
        case FK_PAIR:
            put_ints(b, f->name, (const int64_t *)p, 2);
            break;
        case FK_SHAPE: {
            const Shape *s = (const Shape *)p;
            put_ints(b, f->name, s->d, clamp_rank(s->ndim));
            break;
        }
        case FK_DIMS_INT: {
            int64_t v[IR_MAXDIM];
            for (int k = 0; k < rank; k++) v[k] = ((const int *)p)[k];
            put_ints(b, f->name, v, rank);
            break;
        }
        case FK_DIMS_I64:
            put_ints(b, f->name, (const int64_t *)p, rank);
            break;
        }
    }
}
