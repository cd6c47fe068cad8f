/* kernels_elem.c - reference kernels of the leaves and the elementwise ops.
 *
 * Every kernel here maps out[i] = f(in0[i], in1[i], ...) over tensors of one
 * shape (the builder has broadcast and promoted the operands already).
 *
 * Integer semantics (i32, i8), defined for every input, no UB:
 *   add, sub, mul, neg, abs  wrap as two's complement (abs(INT_MIN) = INT_MIN)
 *   div                      truncates toward zero; x / 0 = 0;
 *                            INT_MIN / -1 = INT_MIN (wraps)
 * Float semantics: IEEE single precision (x / 0 = inf); max and min give NaN
 * when either operand is NaN; relu(x) = x < 0 ? 0 : x, as PyTorch's
 * (relu(NaN) = NaN, relu(-0.0) = -0.0).
 * OPF_FLOAT ops (exp, log, sqrt, rsqrt, tanh, sigmoid, sin, cos, pow) see
 * only f32: the builder casts integers first.
 * Comparisons give an f32 mask of 0 and 1 (IEEE: NaN compares unequal).
 * Casts from f32 to an integer truncate toward zero and saturate at the
 * integer range, NaN gives 0; i32 -> i8 wraps.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* -- scalar helpers -- */

static inline int32_t wrap_i32(uint32_t x) {
    return (int32_t)x;
}
static inline int8_t wrap_i8(uint32_t x) {
    return (int8_t)(uint8_t)x;
}

static inline int32_t div_i32(int32_t a, int32_t b) {
    if (b == 0) return 0;
    if (b == -1) return wrap_i32(0u - (uint32_t)a); /* INT_MIN / -1 wraps */
    return a / b;
}
static inline int8_t div_i8(int8_t a, int8_t b) {
    if (b == 0) return 0;
    return wrap_i8((uint32_t)((int)a / (int)b)); /* -128 / -1 wraps to -128 */
}

static inline float sigmoid_f32(float x) {
    /* never exponentiates a positive number: no overflow for large |x| */
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static inline float max_f32(float a, float b) {
    if (a != a) return a;
    if (b != b) return b;
    return a > b ? a : b;
}
static inline float min_f32(float a, float b) {
    if (a != a) return a;
    if (b != b) return b;
    return a < b ? a : b;
}

static int64_t numel(const KTensor *t) {
    return shape_numel(&t->shape);
}

/* -- leaves -- */

void kern_input_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    /* INPUT nodes alias the data bound to their slot; no kernel runs. */
    TT_ASSERT(!"kern_input_ref called: the runtime binds INPUT nodes itself");
}

/* out: attr.shape, every element attr.value converted to the dtype */
void kern_const_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int64_t len = numel(out);
    double v = n->attr.value;
    switch (out->dtype) {
    case TY_F32: {
        float *o = out->data, f = (float)v;
        for (int64_t i = 0; i < len; i++) o[i] = f;
        break;
    }
    case TY_I32: {
        int32_t *o = out->data, x = sat_i32(v);
        for (int64_t i = 0; i < len; i++) o[i] = x;
        break;
    }
    case TY_I8: {
        int8_t *o = out->data, x = sat_i8(v);
        for (int64_t i = 0; i < len; i++) o[i] = x;
        break;
    }
    default:
        TT_UNREACHABLE();
    }
}

/* -- unary: in[0]: [...] -> out: [...], same dtype -- */

/* One element loop; E is an expression of the element x of type T. */
#define UNARY_LOOP(T, E)                                                                           \
    do {                                                                                           \
        const T *restrict a = in[0].data;                                                          \
        T *restrict o = out->data;                                                                 \
        for (int64_t i = 0; i < len; i++) {                                                        \
            T x = a[i];                                                                            \
            o[i] = (E);                                                                            \
        }                                                                                          \
    } while (0)

/* One loop per dtype; F, I, B are expressions of the element x. */
#define UNARY_ALL(name, F, I, B)                                                                   \
    void kern_##name##_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {     \
        int64_t len = numel(out);                                                                  \
        TT_ASSERT(in[0].dtype == out->dtype);                                                      \
        switch (out->dtype) {                                                                      \
        case TY_F32:                                                                               \
            UNARY_LOOP(float, F);                                                                  \
            break;                                                                                 \
        case TY_I32:                                                                               \
            UNARY_LOOP(int32_t, I);                                                                \
            break;                                                                                 \
        case TY_I8:                                                                                \
            UNARY_LOOP(int8_t, B);                                                                 \
            break;                                                                                 \
        default:                                                                                   \
            TT_UNREACHABLE();                                                                      \
        }                                                                                          \
    }

/* f32 only (OPF_FLOAT) */
#define UNARY_F32(name, F)                                                                         \
    void kern_##name##_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {     \
        TT_ASSERT(out->dtype == TY_F32 && in[0].dtype == TY_F32);                                  \
        int64_t len = numel(out);                                                                  \
        UNARY_LOOP(float, F);                                                                      \
    }

UNARY_ALL(neg, -x, wrap_i32(0u - (uint32_t)x), wrap_i8(0u - (uint32_t)x))
UNARY_ALL(relu, x < 0 ? 0.0f : x, x < 0 ? 0 : x, x < 0 ? 0 : x)
UNARY_ALL(abs, fabsf(x), x < 0 ? wrap_i32(0u - (uint32_t)x) : x,
          x < 0 ? wrap_i8(0u - (uint32_t)x) : x)
UNARY_F32(exp, expf(x))
UNARY_F32(log, logf(x))
UNARY_F32(sqrt, sqrtf(x))
UNARY_F32(rsqrt, 1.0f / sqrtf(x))
UNARY_F32(tanh, tanhf(x))
UNARY_F32(sigmoid, sigmoid_f32(x))
UNARY_F32(sin, sinf(x))
UNARY_F32(cos, cosf(x))
/* half to even (the default rounding mode); an int is already whole */
UNARY_ALL(round, nearbyintf(x), x, x)

/* -- binary: in[0], in[1]: [...] -> out: [...], all one dtype -- */

/* One element loop; E is an expression of the elements x, y of type T. */
#define BINARY_LOOP(T, E)                                                                          \
    do {                                                                                           \
        const T *a = in[0].data, *b = in[1].data;                                                  \
        T *o = out->data;                                                                          \
        for (int64_t i = 0; i < len; i++) {                                                        \
            T x = a[i], y = b[i];                                                                  \
            o[i] = (E);                                                                            \
        }                                                                                          \
    } while (0)

/* F, I, B are expressions of the elements x, y. */
#define BINARY_ALL(name, F, I, B)                                                                  \
    void kern_##name##_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {     \
        int64_t len = numel(out);                                                                  \
        TT_ASSERT(in[0].dtype == out->dtype && in[1].dtype == out->dtype);                         \
        switch (out->dtype) {                                                                      \
        case TY_F32:                                                                               \
            BINARY_LOOP(float, F);                                                                 \
            break;                                                                                 \
        case TY_I32:                                                                               \
            BINARY_LOOP(int32_t, I);                                                               \
            break;                                                                                 \
        case TY_I8:                                                                                \
            BINARY_LOOP(int8_t, B);                                                                \
            break;                                                                                 \
        default:                                                                                   \
            TT_UNREACHABLE();                                                                      \
        }                                                                                          \
    }

/* Operands may alias each other and the output only exactly (x + x), which
 * plain loops handle; no restrict on the binary kernels. */
BINARY_ALL(add, x + y, wrap_i32((uint32_t)x + (uint32_t)y), wrap_i8((uint32_t)x + (uint32_t)y))
BINARY_ALL(sub, x - y, wrap_i32((uint32_t)x - (uint32_t)y), wrap_i8((uint32_t)x - (uint32_t)y))
BINARY_ALL(mul, x *y, wrap_i32((uint32_t)x *(uint32_t)y), wrap_i8((uint32_t)x *(uint32_t)y))
BINARY_ALL(div, x / y, div_i32(x, y), div_i8(x, y))
BINARY_ALL(max, max_f32(x, y), x > y ? x : y, x > y ? x : y)
BINARY_ALL(min, min_f32(x, y), x < y ? x : y, x < y ? x : y)

/* in[0], in[1]: [...] f32 -> out: [...] f32 */
void kern_pow_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    TT_ASSERT(out->dtype == TY_F32 && in[0].dtype == TY_F32 && in[1].dtype == TY_F32);
    int64_t len = numel(out);
    const float *a = in[0].data, *b = in[1].data;
    float *o = out->data;
    for (int64_t i = 0; i < len; i++) o[i] = powf(a[i], b[i]);
}

/* -- comparisons: in[0], in[1]: [...] same dtype -> out: [...] f32 0/1 -- */

#define COMPARE_LOOP(T, OP)                                                                        \
    do {                                                                                           \
        const T *a = in[0].data, *b = in[1].data;                                                  \
        for (int64_t i = 0; i < len; i++) o[i] = a[i] OP b[i] ? 1.0f : 0.0f;                       \
    } while (0)

#define COMPARE(name, OP)                                                                          \
    void kern_##name##_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {     \
        int64_t len = numel(out);                                                                  \
        float *o = out->data;                                                                      \
        TT_ASSERT(out->dtype == TY_F32 && in[0].dtype == in[1].dtype);                             \
        switch (in[0].dtype) {                                                                     \
        case TY_F32:                                                                               \
            COMPARE_LOOP(float, OP);                                                               \
            break;                                                                                 \
        case TY_I32:                                                                               \
            COMPARE_LOOP(int32_t, OP);                                                             \
            break;                                                                                 \
        case TY_I8:                                                                                \
            COMPARE_LOOP(int8_t, OP);                                                              \
            break;                                                                                 \
        default:                                                                                   \
            TT_UNREACHABLE();                                                                      \
        }                                                                                          \
    }

COMPARE(eq, ==)
COMPARE(ne, !=)
COMPARE(lt, <)
COMPARE(le, <=)
COMPARE(gt, >)
COMPARE(ge, >=)

/* -- where: in[0] cond [...] any dtype (nonzero = true; NaN is nonzero),
 *    in[1], in[2]: [...] dtype of out -> out: [...] -- */

/* The condition as a 0/1 byte per element. */
static void truth(const KTensor *c, uint8_t *t, int64_t len) {
    switch (c->dtype) {
    case TY_F32: {
        const float *a = c->data;
        for (int64_t i = 0; i < len; i++) t[i] = a[i] != 0.0f;
        break;
    }
    case TY_I32: {
        const int32_t *a = c->data;
        for (int64_t i = 0; i < len; i++) t[i] = a[i] != 0;
        break;
    }
    case TY_I8: {
        const int8_t *a = c->data;
        for (int64_t i = 0; i < len; i++) t[i] = a[i] != 0;
        break;
    }
    default:
        TT_UNREACHABLE();
    }
}

#define WHERE_LOOP(T)                                                                              \
    do {                                                                                           \
        const T *a = in[1].data, *b = in[2].data;                                                  \
        T *o = out->data;                                                                          \
        for (int64_t i = 0; i < len; i++) o[i] = t[i] ? a[i] : b[i];                               \
    } while (0)

void kern_where_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int64_t len = numel(out);
    TT_ASSERT(in[1].dtype == out->dtype && in[2].dtype == out->dtype);
    uint8_t *t = kern_try_alloc(err, (size_t)len, "condition of where");
    if (!t) return;
    truth(&in[0], t, len);
    switch (out->dtype) {
    case TY_F32:
        WHERE_LOOP(float);
        break;
    case TY_I32:
        WHERE_LOOP(int32_t);
        break;
    case TY_I8:
        WHERE_LOOP(int8_t);
        break;
    default:
        TT_UNREACHABLE();
    }
    free(t);
}

/* -- cast: in[0]: [...] -> out: [...] of attr.dtype -- */

#define CAST_LOOP(TI, TO, CONV)                                                                    \
    do {                                                                                           \
        const TI *a = in[0].data;                                                                  \
        TO *o = out->data;                                                                         \
        for (int64_t i = 0; i < len; i++) o[i] = CONV(a[i]);                                       \
    } while (0)

#define C_F32(x)       ((float)(x))
#define C_I32(x)       ((int32_t)(x))
#define C_I32_TO_I8(x) wrap_i8((uint32_t)(x))
#define C_SAT_I32(x)   sat_i32((double)(x))
#define C_SAT_I8(x)    sat_i8((double)(x))

void kern_cast_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int64_t len = numel(out);
    DType from = in[0].dtype, to = out->dtype;
    if (from == to) {
        if (len > 0) memcpy(out->data, in[0].data, (size_t)len * dtype_size(to));
        return;
    }
    if (from == TY_F32 && to == TY_I32)
        CAST_LOOP(float, int32_t, C_SAT_I32);
    else if (from == TY_F32 && to == TY_I8)
        CAST_LOOP(float, int8_t, C_SAT_I8);
    else if (from == TY_I32 && to == TY_F32)
        CAST_LOOP(int32_t, float, C_F32);
    else if (from == TY_I32 && to == TY_I8)
        CAST_LOOP(int32_t, int8_t, C_I32_TO_I8);
    else if (from == TY_I8 && to == TY_F32)
        CAST_LOOP(int8_t, float, C_F32);
    else if (from == TY_I8 && to == TY_I32)
        CAST_LOOP(int8_t, int32_t, C_I32);
    else
        TT_UNREACHABLE();
}
