/* quant_pass.h - post-training INT8 quantization as a pass on the graph IR
 * (issue 13 item 2; spec/ir.md "The quantization pass").
 *
 * The pass takes a traced float forward (nodes from..root of a graph) and
 * appends its quantized rewrite to the same graph: every Linear - a 2-D
 * matmul by a known weight node, with or without the add of its bias - becomes
 * quantize -> qmatmul -> add of the i32 bias -> requantize, every Conv2d - a
 * conv2d by a known weight node - quantize -> qconv2d -> add -> requantize, a
 * relu, max_pool2d or reshape of a quantized value runs on the integers
 * (relu: max(q, zero_point)), and a dequantize feeding a quantize of the
 * same scale and zero point folds away.
 * Every other node is copied. The float nodes stay in the graph, unreachable
 * from the new root, so they never run.
 */
#ifndef TT_QUANT_PASS_H
#define TT_QUANT_PASS_H

#include "ir.h"

/* One quantized Linear, or Conv2d (conv). w and b are the float weight's
 * and bias's nodes (the match keys; b -1 when the layer has none); the other
 * nodes hold the quantized layer: qw i8[K, N] (Conv2d: i8[O, C/groups, kh,
 * kw]; per output channel, symmetric), w_scale f32[N] (f32[O]), bias i32[N]
 * (the bias in accumulator units, in_scale · w_scale, minus in_zp · the
 * sums of qw over an output channel: the input zero point's correction;
 * qconv2d pads with in_zp, so the correction holds at the borders too).
 * Activations are asymmetric per tensor: in_scale/in_zp quantize the input,
 * out_scale/out_zp the output (unused when the output is the root, which
 * requantizes straight to f32). */
typedef struct QuantLinear {
    int w, b;
    int qw, w_scale, bias;
    float in_scale, out_scale;
    int in_zp, out_zp;
    bool conv;
} QuantLinear;

/* A layer found in a traced forward: layer (index into the QuantLinear
 * array), x (its input node), out (its float output: the add of the bias or
 * the matmul / conv2d), op (that matmul or conv2d), prev (the layer whose
 * output reaches x through relus, max_pool2ds and reshapes only, else -1:
 * its output parameters are x's, so the pair folds), relu (a relu is on
 * that way), root (out is the forward's result), fout (out is requantized
 * straight to f32: it is the root, or its first user is none of relu,
 * max_pool2d, reshape, matmul, conv2d, which would take the integers). */
typedef struct QuantMatch {
    int layer, x, out, prev, op;
    bool relu, root, fout;
} QuantMatch;

/* Finds the Linears and Conv2ds of nodes from..root in order (at most cap); returns how
 * many, or -1 with g->err set when a weight is used in a form the pass does
 * not rewrite (a matmul whose other operand is not 2-D, a weight that is
 * also read by other ops). */
int quant_match(IrGraph *g, int from, int root, const QuantLinear *L, int nl, QuantMatch *m,
                int cap);

/* Appends the quantized rewrite of from..root; returns the new root, or -1
 * (g->err). When qout is not NULL (room for root - from + 1 ids), qout[i]
 * receives the node of quant_match's match i's quantized output as f32 (for
 * the per-layer report). */
int quant_pass(IrGraph *g, int from, int root, const QuantLinear *L, int nl, int *qout);

#endif
