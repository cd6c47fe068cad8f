/* builtins_quant.c - the INT8 quantization primitives (issue 13 item 1):
 * quantize, dequantize, qmatmul, requantize. Their meaning is that of the
 * graph ops (compiler/ops.def, backend/naive/kernels_quant.c); the builtins check
 * the arguments a user can get wrong and leave shapes to the builders
 * (compiler/build_quant.c).
 *
 * scale is a number or a tensor, zero_point an int or an integer tensor;
 * both broadcast to the data by NumPy's rules, or, with axis=, are a
 * scalar or a vector laid along that axis (per channel).
 *
 * quantize(net, calib=...) - a model as the first argument - is the
 * post-training quantization pass of issue 13 item 2 (builtins_ptq.c).
 */
#include "builtins_lib.h"

#include <math.h>

/* A scale argument's node; a number must be positive and finite. */
static int scale_node(Interp *I, Value v, const char *fn) {
    if (is_num(v)) {
        double s = num_of(v);
        if (!(s > 0 && isfinite(s)))
            rt_error(I, "%s: scale must be a positive number, got %g", fn, s);
        return lib_const(I, TY_F32, s);
    }
    if (!is_tensor(v))
        rt_error(I, "%s: scale must be a number or a tensor, got %s", fn, rt_type_name(v));
    return rt_node(I, as_tensor(v));
}

/* A zero_point argument's node (i32); an int must be in the i8 range. */
static int zero_point_node(Interp *I, Value v, const char *fn) {
    if (v.kind == V_NONE) return lib_const(I, TY_I32, 0);
    if (v.kind == V_INT || v.kind == V_BOOL) {
        int64_t z = v.kind == V_INT ? v.i : v.b;
        if (z < -128 || z > 127)
            rt_error(I, "%s: zero_point must be in the i8 range [-128, 127], got %lld", fn,
                     (long long)z);
        return lib_const(I, TY_I32, (double)z);
    }
    if (!is_tensor(v))
        rt_error(I, "%s: zero_point must be an int or an integer tensor, got %s", fn,
                 rt_type_name(v));
    if (as_tensor(v)->dtype == TY_F32)
        rt_error(I, "%s: zero_point must be an int or an integer tensor, got an f32 tensor", fn);
    return rt_node(I, as_tensor(v));
}

static int axis_arg(Interp *I, Value v, const char *fn) {
    return v.kind == V_NONE ? IR_NO_AXIS : (int)lib_int(I, v, 0, fn, "axis");
}

/* quantize(x, scale, zero_point=0, dtype="i8", axis=none) -> i8 */
BUILTIN(bi_quantize) {
    if (nargs >= 1 && args[0].kind == V_MODEL)
        return lib_quantize_model(I, args, nargs, kwnames, kwargs, nkw);
    static const char *const names[] = {"x", "scale", "zero_point", "dtype", "axis", NULL};
    Value a[5];
    BIND("quantize", names, 2, a);
    if (lib_dtype(I, a[3], TY_I8, "quantize") != TY_I8)
        rt_error(I, "quantize: dtype must be \"i8\" (the only quantized type), got \"%s\"",
                 ((Str *)a[3].o)->s);
    int x = lib_node(I, a[0], "quantize", "x");
    int xf = rt_check_node(I, ir_cast(&I->lz.g, x, TY_F32, I->ev.loc));
    int s = scale_node(I, a[1], "quantize"), z = zero_point_node(I, a[2], "quantize");
    return lib_result(I, ir_quantize(&I->lz.g, xf, s, z, axis_arg(I, a[4], "quantize"), I->ev.loc));
}

/* dequantize(q, scale, zero_point=0, axis=none) -> f32 */
BUILTIN(bi_dequantize) {
    static const char *const names[] = {"q", "scale", "zero_point", "axis", NULL};
    Value a[4];
    BIND("dequantize", names, 2, a);
    int q = rt_node(I, lib_tensor(I, a[0], "dequantize", "q"));
    int s = scale_node(I, a[1], "dequantize"), z = zero_point_node(I, a[2], "dequantize");
    return lib_result(I,
                      ir_dequantize(&I->lz.g, q, s, z, axis_arg(I, a[3], "dequantize"), I->ev.loc));
}

/* qmatmul(a, b): i8 @ i8 -> i32 */
BUILTIN(bi_qmatmul) {
    static const char *const names[] = {"a", "b", NULL};
    Value a[2];
    BIND("qmatmul", names, 2, a);
    int x = rt_node(I, lib_tensor(I, a[0], "qmatmul", "a"));
    int y = rt_node(I, lib_tensor(I, a[1], "qmatmul", "b"));
    return lib_result(I, ir_qmatmul(&I->lz.g, x, y, I->ev.loc));
}

/* requantize(acc, scale, zero_point=0, dtype="i8", axis=none) -> i8 or f32 */
BUILTIN(bi_requantize) {
    static const char *const names[] = {"acc", "scale", "zero_point", "dtype", "axis", NULL};
    Value a[5];
    BIND("requantize", names, 2, a);
    DType to = lib_dtype(I, a[3], TY_I8, "requantize");
    if (to != TY_I8 && to != TY_F32)
        rt_error(I, "requantize: dtype must be \"i8\" or \"f32\", got \"%s\"", dtype_name(to));
    if (to == TY_F32 && a[2].kind != V_NONE)
        rt_error(I, "requantize: zero_point is the offset of an i8 result; dtype=\"f32\" takes "
                    "none");
    int acc = rt_node(I, lib_tensor(I, a[0], "requantize", "acc"));
    int s = scale_node(I, a[1], "requantize"), z = zero_point_node(I, a[2], "requantize");
    return lib_result(
        I, ir_requantize(&I->lz.g, acc, s, z, to, axis_arg(I, a[4], "requantize"), I->ev.loc));
}

void lib_register_quant(Interp *I) {
    rt_define_global(I, "quantize", rt_builtin(I, "quantize", bi_quantize, VNONE));
    rt_define_global(I, "dequantize", rt_builtin(I, "dequantize", bi_dequantize, VNONE));
    rt_define_global(I, "qmatmul", rt_builtin(I, "qmatmul", bi_qmatmul, VNONE));
    rt_define_global(I, "requantize", rt_builtin(I, "requantize", bi_requantize, VNONE));
}
