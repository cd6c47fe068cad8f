/* builtins_attn.c - attention(q, k, v, causal=false, scale=none, len=none):
 * PyTorch's F.scaled_dot_product_attention(q, k, v, is_causal=causal,
 * scale=scale) on the attention op (ops.def, compiler/build_attn.c).
 *
 * len (an i32 0-d tensor, or an int) is the number of valid keys: the
 * KV-cache decode graph passes it as a tensor, so one compiled graph serves
 * every position. Shape errors come from the builder and the shape rule, at
 * the call.
 */
#include "builtins_lib.h"

#include <math.h>

BUILTIN(bi_attention) {
    static const char *const names[] = {"q", "k", "v", "causal", "scale", "len", NULL};
    Value a[6];
    BIND("attention", names, 3, a);
    int q = lib_node(I, a[0], "attention", "q");
    int k = lib_node(I, a[1], "attention", "k");
    int v = lib_node(I, a[2], "attention", "v");
    bool causal = lib_bool(I, a[3], false, "attention", "causal");
    double scale = lib_float(I, a[4], NAN, "attention", "scale");
    int len = a[5].kind == V_NONE ? -1 : lib_node(I, a[5], "attention", "len");
    return lib_result(I, ir_attention(&I->lz.g, q, k, v, len, causal, scale, I->ev.loc));
}

void lib_register_attn(Interp *I) {
    rt_define_global(I, "attention", rt_builtin(I, "attention", bi_attention, VNONE));
}
