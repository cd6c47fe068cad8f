/* test_kernels.c - the reference kernels and the naive runtime.
 *
 * kern_table: one hand-checked case per op and dtype worth checking, each
 * built as a tiny graph (ir_input + ir_add, so shapes come from the real
 * shape rules) and run with rt_naive_run. kern_table::every_op_has_a_case
 * fails when a row of ops.def (other than INPUT) has no case here.
 * kern_direct: kernels called directly, where the shape rules forbid a graph.
 * kern_naive: the runtime itself (liveness, aliasing, profiling, and how a
 * run fails: an index out of range, a result that does not fit).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "kernels.h"

#define MAXIN 7

/* A tensor literal: dtype, shape, values (NULL when empty). */
typedef struct TV {
    DType dt;
    int ndim;
    int64_t d[IR_MAXDIM];
    const double *v;
} TV;

typedef struct KCase {
    const char *name;
    OpKind op;
    IrAttr attr;
    int nin;
    TV in[MAXIN];
    TV out;
    double tol; /* 0: exact; else |got - want| <= tol * max(1, |want|) */
} KCase;

#define V(...) ((const double[]){__VA_ARGS__})
#define IMAX   2147483647.0
#define IMIN   -2147483648.0
#define PI     3.14159265358979323846

/* clang-format off */
static const KCase kcases[] = {
    /* -- leaves -- */
    {"const f32", OP_CONST, {.dtype = TY_F32, .shape = {2, {2, 2}}, .value = 2.5}, 0, {{0}},
     {TY_F32, 2, {2, 2}, V(2.5, 2.5, 2.5, 2.5)}, 0},
    {"const i32", OP_CONST, {.dtype = TY_I32, .shape = {1, {3}}, .value = -7}, 0, {{0}},
     {TY_I32, 1, {3}, V(-7, -7, -7)}, 0},
    {"const i8 saturates", OP_CONST, {.dtype = TY_I8, .shape = {1, {2}}, .value = 300}, 0, {{0}},
     {TY_I8, 1, {2}, V(127, 127)}, 0},
    {"const scalar", OP_CONST, {.dtype = TY_F32, .shape = {0, {0}}, .value = -1}, 0, {{0}},
     {TY_F32, 0, {0}, V(-1)}, 0},
    {"const zero-size", OP_CONST, {.dtype = TY_F32, .shape = {2, {0, 3}}, .value = 1}, 0, {{0}},
     {TY_F32, 2, {0, 3}, NULL}, 0},

    /* -- unary -- */
    {"neg f32", OP_NEG, {0}, 1, {{TY_F32, 1, {3}, V(1, -2, 0)}}, {TY_F32, 1, {3}, V(-1, 2, 0)}, 0},
    {"neg i32 wraps", OP_NEG, {0}, 1, {{TY_I32, 2, {1, 2}, V(5, IMIN)}},
     {TY_I32, 2, {1, 2}, V(-5, IMIN)}, 0},
    {"neg i8 wraps", OP_NEG, {0}, 1, {{TY_I8, 1, {2}, V(-128, 3)}},
     {TY_I8, 1, {2}, V(-128, -3)}, 0},
    {"neg zero-size", OP_NEG, {0}, 1, {{TY_F32, 2, {3, 0}, NULL}}, {TY_F32, 2, {3, 0}, NULL}, 0},
    {"exp", OP_EXP, {0}, 1, {{TY_F32, 1, {4}, V(0, 1, -INFINITY, 100)}},
     {TY_F32, 1, {4}, V(1, 2.718281828459045, 0, INFINITY)}, 1e-6},
    {"log", OP_LOG, {0}, 1, {{TY_F32, 1, {4}, V(1, 2.718281828459045, 0, -1)}},
     {TY_F32, 1, {4}, V(0, 1, -INFINITY, NAN)}, 1e-6},
    {"sqrt", OP_SQRT, {0}, 1, {{TY_F32, 1, {4}, V(4, 2, 0, -1)}},
     {TY_F32, 1, {4}, V(2, 1.4142135623730951, 0, NAN)}, 1e-6},
    {"rsqrt", OP_RSQRT, {0}, 1, {{TY_F32, 1, {3}, V(4, 0.25, 0)}},
     {TY_F32, 1, {3}, V(0.5, 2, INFINITY)}, 1e-6},
    {"tanh", OP_TANH, {0}, 1, {{TY_F32, 1, {4}, V(0, 1, -100, 100)}},
     {TY_F32, 1, {4}, V(0, 0.7615941559557649, -1, 1)}, 1e-6},
    {"sigmoid at +-100", OP_SIGMOID, {0}, 1, {{TY_F32, 1, {5}, V(0, 100, -100, 1, -1000)}},
     {TY_F32, 1, {5}, V(0.5, 1, 3.720075976020836e-44, 0.7310585786300049, 0)}, 1e-6},
    {"relu f32", OP_RELU, {0}, 1, {{TY_F32, 1, {4}, V(-1, 0, 2.5, -INFINITY)}},
     {TY_F32, 1, {4}, V(0, 0, 2.5, 0)}, 0},
    {"relu f32 NaN passes (PyTorch)", OP_RELU, {0}, 1, {{TY_F32, 1, {3}, V(NAN, -0.0, INFINITY)}},
     {TY_F32, 1, {3}, V(NAN, -0.0, INFINITY)}, 0},
    {"relu i32", OP_RELU, {0}, 1, {{TY_I32, 1, {3}, V(-3, 4, IMIN)}},
     {TY_I32, 1, {3}, V(0, 4, 0)}, 0},
    {"relu i8", OP_RELU, {0}, 1, {{TY_I8, 1, {2}, V(-128, 127)}}, {TY_I8, 1, {2}, V(0, 127)}, 0},
    {"abs f32", OP_ABS, {0}, 1, {{TY_F32, 1, {3}, V(-1.5, 2, -INFINITY)}},
     {TY_F32, 1, {3}, V(1.5, 2, INFINITY)}, 0},
    {"abs i32 wraps", OP_ABS, {0}, 1, {{TY_I32, 1, {3}, V(-5, IMIN, 7)}},
     {TY_I32, 1, {3}, V(5, IMIN, 7)}, 0},
    {"abs i8 wraps", OP_ABS, {0}, 1, {{TY_I8, 1, {2}, V(-128, -1)}},
     {TY_I8, 1, {2}, V(-128, 1)}, 0},
    {"sin", OP_SIN, {0}, 1, {{TY_F32, 1, {3}, V(0, PI / 2, -PI / 6)}},
     {TY_F32, 1, {3}, V(0, 1, -0.5)}, 1e-6},
    {"cos", OP_COS, {0}, 1, {{TY_F32, 1, {3}, V(0, PI, PI / 3)}},
     {TY_F32, 1, {3}, V(1, -1, 0.5)}, 1e-6},

    /* -- binary -- */
    {"add f32", OP_ADD, {0}, 2, {{TY_F32, 2, {2, 2}, V(1, 2, 3, 4)},
     {TY_F32, 2, {2, 2}, V(10, 20, 30, 0.5)}},
     {TY_F32, 2, {2, 2}, V(11, 22, 33, 4.5)}, 0},
    {"add i32 wraps", OP_ADD, {0}, 2, {{TY_I32, 1, {2}, V(IMAX, -1)}, {TY_I32, 1, {2}, V(1, -2)}},
     {TY_I32, 1, {2}, V(IMIN, -3)}, 0},
    {"add i8 wraps", OP_ADD, {0}, 2, {{TY_I8, 1, {2}, V(127, -128)}, {TY_I8, 1, {2}, V(1, -1)}},
     {TY_I8, 1, {2}, V(-128, 127)}, 0},
    {"sub f32", OP_SUB, {0}, 2, {{TY_F32, 1, {2}, V(1, 2)}, {TY_F32, 1, {2}, V(3, 0.5)}},
     {TY_F32, 1, {2}, V(-2, 1.5)}, 0},
    {"sub i32 wraps", OP_SUB, {0}, 2, {{TY_I32, 1, {2}, V(IMIN, 5)}, {TY_I32, 1, {2}, V(1, 7)}},
     {TY_I32, 1, {2}, V(IMAX, -2)}, 0},
    {"sub i8 wraps", OP_SUB, {0}, 2, {{TY_I8, 1, {1}, V(-128)}, {TY_I8, 1, {1}, V(1)}},
     {TY_I8, 1, {1}, V(127)}, 0},
    {"mul f32", OP_MUL, {0}, 2, {{TY_F32, 1, {2}, V(2, -3)}, {TY_F32, 1, {2}, V(4, 0.5)}},
     {TY_F32, 1, {2}, V(8, -1.5)}, 0},
    {"mul i32 wraps", OP_MUL, {0}, 2, {{TY_I32, 1, {3}, V(65536, -3, IMAX)},
     {TY_I32, 1, {3}, V(65536, 7, 2)}},
     {TY_I32, 1, {3}, V(0, -21, -2)}, 0},
    {"mul i8 wraps", OP_MUL, {0}, 2, {{TY_I8, 1, {2}, V(16, -2)}, {TY_I8, 1, {2}, V(16, 64)}},
     {TY_I8, 1, {2}, V(0, -128)}, 0},
    {"div f32 by zero", OP_DIV, {0}, 2, {{TY_F32, 1, {4}, V(1, -1, 0, 7)},
     {TY_F32, 1, {4}, V(0, 0, 0, 2)}},
     {TY_F32, 1, {4}, V(INFINITY, -INFINITY, NAN, 3.5)}, 0},
    {"div i32 truncates, x/0 = 0", OP_DIV, {0}, 2,
     {{TY_I32, 1, {5}, V(7, -7, 5, IMIN, 0)}, {TY_I32, 1, {5}, V(2, 2, 0, -1, 0)}},
     {TY_I32, 1, {5}, V(3, -3, 0, IMIN, 0)}, 0},
    {"div i8", OP_DIV, {0}, 2, {{TY_I8, 1, {3}, V(-128, 7, -7)}, {TY_I8, 1, {3}, V(-1, 0, -2)}},
     {TY_I8, 1, {3}, V(-128, 0, 3)}, 0},
    {"pow", OP_POW, {0}, 2, {{TY_F32, 1, {4}, V(2, 9, 2, 0)}, {TY_F32, 1, {4}, V(3, 0.5, -1, 0)}},
     {TY_F32, 1, {4}, V(8, 3, 0.5, 1)}, 1e-6},
    {"max f32 NaN", OP_MAX, {0}, 2, {{TY_F32, 1, {4}, V(1, NAN, 3, -1)},
     {TY_F32, 1, {4}, V(2, 0, NAN, -2)}},
     {TY_F32, 1, {4}, V(2, NAN, NAN, -1)}, 0},
    {"max i32", OP_MAX, {0}, 2, {{TY_I32, 1, {2}, V(-5, 3)}, {TY_I32, 1, {2}, V(-6, 4)}},
     {TY_I32, 1, {2}, V(-5, 4)}, 0},
    {"max i8", OP_MAX, {0}, 2, {{TY_I8, 1, {2}, V(-128, 3)}, {TY_I8, 1, {2}, V(127, -3)}},
     {TY_I8, 1, {2}, V(127, 3)}, 0},
    {"min f32 NaN", OP_MIN, {0}, 2, {{TY_F32, 1, {4}, V(1, NAN, 3, -1)},
     {TY_F32, 1, {4}, V(2, 0, NAN, -2)}},
     {TY_F32, 1, {4}, V(1, NAN, NAN, -2)}, 0},
    {"min i32", OP_MIN, {0}, 2, {{TY_I32, 1, {2}, V(-5, 3)}, {TY_I32, 1, {2}, V(-6, 4)}},
     {TY_I32, 1, {2}, V(-6, 3)}, 0},
    {"min i8", OP_MIN, {0}, 2, {{TY_I8, 1, {2}, V(-128, 3)}, {TY_I8, 1, {2}, V(127, -3)}},
     {TY_I8, 1, {2}, V(-128, -3)}, 0},

    /* -- comparisons -- */
    {"eq f32 NaN", OP_EQ, {0}, 2, {{TY_F32, 1, {3}, V(1, 2, NAN)}, {TY_F32, 1, {3}, V(1, 3, NAN)}},
     {TY_F32, 1, {3}, V(1, 0, 0)}, 0},
    {"eq i32", OP_EQ, {0}, 2, {{TY_I32, 1, {2}, V(IMIN, 4)}, {TY_I32, 1, {2}, V(IMIN, 5)}},
     {TY_F32, 1, {2}, V(1, 0)}, 0},
    {"ne f32 NaN", OP_NE, {0}, 2, {{TY_F32, 1, {3}, V(1, 2, NAN)}, {TY_F32, 1, {3}, V(1, 3, NAN)}},
     {TY_F32, 1, {3}, V(0, 1, 1)}, 0},
    {"lt f32", OP_LT, {0}, 2, {{TY_F32, 1, {3}, V(1, 2, 3)}, {TY_F32, 1, {3}, V(2, 2, 2)}},
     {TY_F32, 1, {3}, V(1, 0, 0)}, 0},
    {"lt i8", OP_LT, {0}, 2, {{TY_I8, 1, {2}, V(-128, 127)}, {TY_I8, 1, {2}, V(127, -128)}},
     {TY_F32, 1, {2}, V(1, 0)}, 0},
    {"le f32", OP_LE, {0}, 2, {{TY_F32, 1, {3}, V(1, 2, 3)}, {TY_F32, 1, {3}, V(2, 2, 2)}},
     {TY_F32, 1, {3}, V(1, 1, 0)}, 0},
    {"gt f32", OP_GT, {0}, 2, {{TY_F32, 1, {3}, V(1, 2, 3)}, {TY_F32, 1, {3}, V(2, 2, 2)}},
     {TY_F32, 1, {3}, V(0, 0, 1)}, 0},
    {"gt i32", OP_GT, {0}, 2, {{TY_I32, 1, {2}, V(IMAX, -1)}, {TY_I32, 1, {2}, V(IMIN, 0)}},
     {TY_F32, 1, {2}, V(1, 0)}, 0},
    {"ge f32", OP_GE, {0}, 2, {{TY_F32, 1, {4}, V(1, 2, 3, NAN)}, {TY_F32, 1, {4}, V(2, 2, 2, 1)}},
     {TY_F32, 1, {4}, V(0, 1, 1, 0)}, 0},

    /* -- where -- */
    {"where f32 cond", OP_WHERE, {0}, 3,
     {{TY_F32, 1, {4}, V(1, 0, NAN, -0.0)}, {TY_F32, 1, {4}, V(1, 2, 3, 4)},
     {TY_F32, 1, {4}, V(10, 20, 30, 40)}},
     {TY_F32, 1, {4}, V(1, 20, 3, 40)}, 0},
    {"where i32 cond, i8 values", OP_WHERE, {0}, 3,
     {{TY_I32, 1, {2}, V(0, 5)}, {TY_I8, 1, {2}, V(1, 2)}, {TY_I8, 1, {2}, V(-1, -2)}},
     {TY_I8, 1, {2}, V(-1, 2)}, 0},
    {"where i8 cond, i32 values", OP_WHERE, {0}, 3,
     {{TY_I8, 1, {2}, V(-1, 0)}, {TY_I32, 1, {2}, V(IMAX, 2)}, {TY_I32, 1, {2}, V(3, IMIN)}},
     {TY_I32, 1, {2}, V(IMAX, IMIN)}, 0},

    /* -- reductions -- */
    {"sum axis 1", OP_SUM, {.axes = 2}, 1, {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}},
     {TY_F32, 1, {2}, V(6, 15)}, 0},
    {"sum axis 1 keepdims", OP_SUM, {.axes = 2, .keepdims = true}, 1,
     {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}}, {TY_F32, 2, {2, 1}, V(6, 15)}, 0},
    {"sum axis 0", OP_SUM, {.axes = 1}, 1, {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}},
     {TY_F32, 1, {3}, V(5, 7, 9)}, 0},
    {"sum all", OP_SUM, {.axes = 3}, 1, {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}},
     {TY_F32, 0, {0}, V(21)}, 0},
    {"sum all keepdims", OP_SUM, {.axes = 3, .keepdims = true}, 1,
     {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}}, {TY_F32, 2, {1, 1}, V(21)}, 0},
    {"sum axes 0 and 2", OP_SUM, {.axes = 5}, 1,
     {{TY_F32, 3, {2, 3, 2}, V(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)}},
     {TY_F32, 1, {3}, V(14, 22, 30)}, 0},
    {"sum is accurate", OP_SUM, {.axes = 1}, 1, {{TY_F32, 1, {4}, V(1e8, 1, -1e8, 1)}},
     {TY_F32, 0, {0}, V(2)}, 0},
    {"sum i32 wraps", OP_SUM, {.axes = 1}, 1, {{TY_I32, 1, {2}, V(IMAX, 1)}},
     {TY_I32, 0, {0}, V(IMIN)}, 0},
    {"sum i8 wraps", OP_SUM, {.axes = 1, .keepdims = true}, 1, {{TY_I8, 1, {2}, V(100, 100)}},
     {TY_I8, 1, {1}, V(-56)}, 0},
    {"sum over an empty axis", OP_SUM, {.axes = 1}, 1, {{TY_F32, 2, {0, 3}, NULL}},
     {TY_F32, 1, {3}, V(0, 0, 0)}, 0},
    {"rmax axis 1 NaN", OP_RMAX, {.axes = 2}, 1, {{TY_F32, 2, {2, 3}, V(1, 5, 3, NAN, 2, 9)}},
     {TY_F32, 1, {2}, V(5, NAN)}, 0},
    {"rmax axis 0 keepdims", OP_RMAX, {.axes = 1, .keepdims = true}, 1,
     {{TY_F32, 2, {2, 3}, V(1, 5, 3, NAN, 2, 9)}}, {TY_F32, 2, {1, 3}, V(NAN, 5, 9)}, 0},
    {"rmax -inf", OP_RMAX, {.axes = 1}, 1, {{TY_F32, 1, {2}, V(-INFINITY, -INFINITY)}},
     {TY_F32, 0, {0}, V(-INFINITY)}, 0},
    {"rmax i32", OP_RMAX, {.axes = 1}, 1, {{TY_I32, 1, {3}, V(-5, -3, IMIN)}},
     {TY_I32, 0, {0}, V(-3)}, 0},
    {"rmax i8", OP_RMAX, {.axes = 3}, 1, {{TY_I8, 2, {1, 2}, V(-128, -100)}},
     {TY_I8, 0, {0}, V(-100)}, 0},
    {"rmax zero-size kept dim", OP_RMAX, {.axes = 2}, 1, {{TY_F32, 2, {0, 3}, NULL}},
     {TY_F32, 1, {0}, NULL}, 0},
    {"argmax axis 1 ties, NaN", OP_ARGMAX, {.axis = 1}, 1,
     {{TY_F32, 2, {2, 3}, V(1, 3, 3, 2, NAN, NAN)}},
     {TY_I32, 1, {2}, V(1, 1)}, 0},
    {"argmax axis 0 keepdims", OP_ARGMAX, {.axis = 0, .keepdims = true}, 1,
     {{TY_F32, 2, {2, 3}, V(1, 3, 3, 2, NAN, 1)}}, {TY_I32, 2, {1, 3}, V(1, 1, 0)}, 0},
    {"argmax middle axis", OP_ARGMAX, {.axis = 1}, 1,
     {{TY_F32, 3, {2, 2, 2}, V(0, 5, 1, 4, 7, 7, 8, 6)}}, {TY_I32, 2, {2, 2}, V(1, 0, 1, 0)}, 0},
    {"argmax i32 first", OP_ARGMAX, {.axis = 0}, 1, {{TY_I32, 1, {3}, V(-1, 7, 7)}},
     {TY_I32, 0, {0}, V(1)}, 0},
    {"argmax i8 all equal", OP_ARGMAX, {.axis = 0}, 1, {{TY_I8, 1, {2}, V(-128, -128)}},
     {TY_I32, 0, {0}, V(0)}, 0},

    /* -- sorting, scans, rounding (torch.sort(stable=True), torch.cumsum, torch.round) -- */
    {"argsort ties stable, NaN last", OP_ARGSORT, {.axis = 0}, 1,
     {{TY_F32, 1, {5}, V(3, NAN, 1, 3, 0)}}, {TY_I32, 1, {5}, V(4, 2, 0, 3, 1)}, 0},
    {"argsort descending: NaN first, ties in order", OP_ARGSORT, {.axis = 0, .reverse = true}, 1,
     {{TY_F32, 1, {5}, V(3, NAN, 1, 3, 0)}}, {TY_I32, 1, {5}, V(1, 0, 3, 2, 4)}, 0},
    {"argsort i32 axis 0", OP_ARGSORT, {.axis = 0}, 1,
     {{TY_I32, 2, {2, 3}, V(3, 1, 2, 1, 1, 5)}}, {TY_I32, 2, {2, 3}, V(1, 0, 0, 0, 1, 1)}, 0},
    {"argsort -0 equals 0", OP_ARGSORT, {.axis = 1}, 1,
     {{TY_F32, 2, {1, 3}, V(0, -0.0, -1)}}, {TY_I32, 2, {1, 3}, V(2, 0, 1)}, 0},
    {"cumsum f32 axis 1", OP_CUMSUM, {.axis = 1}, 1, {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}},
     {TY_F32, 2, {2, 3}, V(1, 3, 6, 4, 9, 15)}, 0},
    {"cumsum reverse axis 0", OP_CUMSUM, {.axis = 0, .reverse = true}, 1,
     {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}}, {TY_F32, 2, {2, 3}, V(5, 7, 9, 4, 5, 6)}, 0},
    {"cumsum i8 wraps", OP_CUMSUM, {.axis = 0}, 1, {{TY_I8, 1, {2}, V(100, 100)}},
     {TY_I8, 1, {2}, V(100, -56)}, 0},
    {"round half to even", OP_ROUND, {0}, 1,
     {{TY_F32, 1, {9}, V(0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, NAN, INFINITY)}},
     {TY_F32, 1, {9}, V(0, 2, 2, -0.0, -2, 2, 3, NAN, INFINITY)}, 0},
    {"round i32 unchanged", OP_ROUND, {0}, 1, {{TY_I32, 1, {2}, V(-7, IMAX)}},
     {TY_I32, 1, {2}, V(-7, IMAX)}, 0},

    /* -- movement -- */
    {"reshape f32", OP_RESHAPE, {.shape = {2, {3, 2}}}, 1,
     {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}},
     {TY_F32, 2, {3, 2}, V(1, 2, 3, 4, 5, 6)}, 0},
    {"reshape i8", OP_RESHAPE, {.shape = {2, {2, 2}}}, 1, {{TY_I8, 1, {4}, V(1, -2, 3, -4)}},
     {TY_I8, 2, {2, 2}, V(1, -2, 3, -4)}, 0},
    {"permute 2d", OP_PERMUTE, {.perm = {1, 0}}, 1, {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}},
     {TY_F32, 2, {3, 2}, V(1, 4, 2, 5, 3, 6)}, 0},
    {"permute 3d i32", OP_PERMUTE, {.perm = {2, 0, 1}}, 1,
     {{TY_I32, 3, {2, 3, 4},
       V(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)}},
     {TY_I32, 3, {4, 2, 3},
      V(0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23)}, 0},
    {"permute i8", OP_PERMUTE, {.perm = {1, 0}}, 1, {{TY_I8, 2, {2, 2}, V(1, 2, 3, 4)}},
     {TY_I8, 2, {2, 2}, V(1, 3, 2, 4)}, 0},
    {"broadcast rows", OP_BROADCAST, {.shape = {2, {2, 3}}}, 1, {{TY_F32, 2, {1, 3}, V(1, 2, 3)}},
     {TY_F32, 2, {2, 3}, V(1, 2, 3, 1, 2, 3)}, 0},
    {"broadcast cols", OP_BROADCAST, {.shape = {2, {2, 3}}}, 1, {{TY_I32, 2, {2, 1}, V(1, 2)}},
     {TY_I32, 2, {2, 3}, V(1, 1, 1, 2, 2, 2)}, 0},
    {"broadcast i8 both", OP_BROADCAST, {.shape = {2, {2, 2}}}, 1, {{TY_I8, 2, {1, 1}, V(-5)}},
     {TY_I8, 2, {2, 2}, V(-5, -5, -5, -5)}, 0},
    {"slice with step", OP_SLICE, {.start = {0, 1}, .stop = {2, 5}, .step = {1, 2}}, 1,
     {{TY_F32, 2, {2, 5}, V(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)}}, {TY_F32, 2, {2, 2}, V(1, 3, 6, 8)}, 0},
    {"slice rows i8", OP_SLICE, {.start = {1, 0}, .stop = {3, 2}, .step = {1, 1}}, 1,
     {{TY_I8, 2, {3, 2}, V(1, 2, 3, 4, 5, 6)}}, {TY_I8, 2, {2, 2}, V(3, 4, 5, 6)}, 0},
    {"slice step 3 i32", OP_SLICE, {.start = {1}, .stop = {7}, .step = {3}}, 1,
     {{TY_I32, 1, {7}, V(0, 1, 2, 3, 4, 5, 6)}}, {TY_I32, 1, {2}, V(1, 4)}, 0},
    {"slice empty", OP_SLICE, {.start = {2, 0}, .stop = {2, 2}, .step = {1, 1}}, 1,
     {{TY_F32, 2, {2, 2}, V(1, 2, 3, 4)}}, {TY_F32, 2, {0, 2}, NULL}, 0},
    {"pad with step", OP_PAD, {.shape = {2, {3, 5}}, .start = {1, 0}, .step = {1, 2}}, 1,
     {{TY_F32, 2, {2, 2}, V(1, 2, 3, 4)}},
     {TY_F32, 2, {3, 5}, V(0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 3, 0, 4, 0, 0)}, 0},
    {"pad i8", OP_PAD, {.shape = {1, {4}}, .start = {1}, .step = {2}}, 1,
     {{TY_I8, 1, {2}, V(-1, 5)}},
     {TY_I8, 1, {4}, V(0, -1, 0, 5)}, 0},
    {"pad zero-size input", OP_PAD, {.shape = {2, {2, 2}}, .start = {0, 0}, .step = {1, 1}}, 1,
     {{TY_I32, 2, {0, 2}, NULL}}, {TY_I32, 2, {2, 2}, V(0, 0, 0, 0)}, 0},
    {"concat 3 along axis 1", OP_CONCAT, {.axis = 1}, 3,
     {{TY_F32, 2, {2, 1}, V(1, 2)}, {TY_F32, 2, {2, 2}, V(3, 4, 5, 6)},
     {TY_F32, 2, {2, 1}, V(7, 8)}},
     {TY_F32, 2, {2, 4}, V(1, 3, 4, 7, 2, 5, 6, 8)}, 0},
    {"concat 3 along axis 0, one empty, i8", OP_CONCAT, {.axis = 0}, 3,
     {{TY_I8, 2, {1, 2}, V(1, 2)}, {TY_I8, 2, {0, 2}, NULL}, {TY_I8, 2, {2, 2}, V(3, 4, 5, 6)}},
     {TY_I8, 2, {3, 2}, V(1, 2, 3, 4, 5, 6)}, 0},
    {"concat 2 i32", OP_CONCAT, {.axis = 0}, 2, {{TY_I32, 1, {1}, V(IMIN)},
     {TY_I32, 1, {2}, V(2, 3)}},
     {TY_I32, 1, {3}, V(IMIN, 2, 3)}, 0},

    /* -- matmul, gather, scatter_add, cast -- */
    {"matmul", OP_MATMUL, {0}, 2,
     {{TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}, {TY_F32, 2, {3, 2}, V(7, 8, 9, 10, 11, 12)}},
     {TY_F32, 2, {2, 2}, V(58, 64, 139, 154)}, 0},
    {"matmul batched", OP_MATMUL, {0}, 2,
     {{TY_F32, 3, {2, 2, 2}, V(1, 2, 3, 4, 1, 0, 0, 1)},
     {TY_F32, 3, {2, 2, 2}, V(1, 0, 0, 1, 5, 6, 7, 8)}},
     {TY_F32, 3, {2, 2, 2}, V(1, 2, 3, 4, 5, 6, 7, 8)}, 0},
    {"matmul row vector", OP_MATMUL, {0}, 2,
     {{TY_F32, 2, {1, 2}, V(1, -1)}, {TY_F32, 2, {2, 3}, V(1, 2, 3, 4, 5, 6)}},
     {TY_F32, 2, {1, 3}, V(-3, -3, -3)}, 0},
    {"matmul k = 0", OP_MATMUL, {0}, 2, {{TY_F32, 2, {2, 0}, NULL}, {TY_F32, 2, {0, 3}, NULL}},
     {TY_F32, 2, {2, 3}, V(0, 0, 0, 0, 0, 0)}, 0},
    {"gather rows", OP_GATHER, {0}, 2,
     {{TY_F32, 2, {3, 2}, V(1, 2, 3, 4, 5, 6)}, {TY_I32, 2, {2, 2}, V(2, 0, 1, 2)}},
     {TY_F32, 3, {2, 2, 2}, V(5, 6, 1, 2, 3, 4, 5, 6)}, 0},
    {"gather i8 scalars", OP_GATHER, {0}, 2,
     {{TY_I8, 1, {4}, V(10, 20, 30, -40)}, {TY_I32, 1, {3}, V(3, 3, 0)}},
     {TY_I8, 1, {3}, V(-40, -40, 10)}, 0},
    {"gather i32 scalar index", OP_GATHER, {0}, 2,
     {{TY_I32, 2, {2, 2}, V(1, 2, IMIN, 4)}, {TY_I32, 0, {0}, V(1)}},
     {TY_I32, 1, {2}, V(IMIN, 4)}, 0},
    {"scatter_add", OP_SCATTER_ADD, {.shape = {2, {2, 2}}}, 2,
     {{TY_F32, 2, {3, 2}, V(1, 2, 3, 4, 5, 6)}, {TY_I32, 1, {3}, V(1, 1, 0)}},
     {TY_F32, 2, {2, 2}, V(5, 6, 4, 6)}, 0},
    {"scatter_add i32 wraps", OP_SCATTER_ADD, {.shape = {1, {3}}}, 2,
     {{TY_I32, 1, {4}, V(IMAX, 1, 5, 9)}, {TY_I32, 1, {4}, V(0, 0, 2, 1)}},
     {TY_I32, 1, {3}, V(IMIN, 9, 5)}, 0},
    {"scatter_add i8", OP_SCATTER_ADD, {.shape = {1, {2}}}, 2,
     {{TY_I8, 1, {3}, V(100, 100, -3)}, {TY_I32, 1, {3}, V(1, 1, 0)}},
     {TY_I8, 1, {2}, V(-3, -56)}, 0},
    {"cast f32 -> i32 saturates", OP_CAST, {.dtype = TY_I32}, 1,
     {{TY_F32, 1, {7}, V(1.9, -1.9, NAN, 3e9, -3e9, INFINITY, -INFINITY)}},
     {TY_I32, 1, {7}, V(1, -1, 0, IMAX, IMIN, IMAX, IMIN)}, 0},
    {"cast f32 -> i8 saturates", OP_CAST, {.dtype = TY_I8}, 1,
     {{TY_F32, 1, {5}, V(200, -200, 127.9, -128.9, NAN)}},
     {TY_I8, 1, {5}, V(127, -128, 127, -128, 0)}, 0},
    {"cast i32 -> i8 wraps", OP_CAST, {.dtype = TY_I8}, 1, {{TY_I32, 1, {3}, V(300, -129, 127)}},
     {TY_I8, 1, {3}, V(44, 127, 127)}, 0},
    {"cast i32 -> f32", OP_CAST, {.dtype = TY_F32}, 1, {{TY_I32, 1, {2}, V(16777217, IMIN)}},
     {TY_F32, 1, {2}, V(16777216, IMIN)}, 0},
    {"cast i8 -> f32", OP_CAST, {.dtype = TY_F32}, 1, {{TY_I8, 1, {2}, V(-128, 127)}},
     {TY_F32, 1, {2}, V(-128, 127)}, 0},
    {"cast i8 -> i32", OP_CAST, {.dtype = TY_I32}, 1, {{TY_I8, 1, {2}, V(-128, 127)}},
     {TY_I32, 1, {2}, V(-128, 127)}, 0},
    {"cast f32 -> f32", OP_CAST, {.dtype = TY_F32}, 1, {{TY_F32, 1, {2}, V(-0.5, NAN)}},
     {TY_F32, 1, {2}, V(-0.5, NAN)}, 0},

    /* -- convolution and pooling -- */
    {"conv2d", OP_CONV2D, {.win = {.stride = {1, 1}, .dilation = {1, 1}, .groups = 1}}, 2,
     {{TY_F32, 4, {1, 1, 3, 3}, V(1, 2, 3, 4, 5, 6, 7, 8, 9)},
     {TY_F32, 4, {1, 1, 2, 2}, V(1, 0, 0, 1)}},
     {TY_F32, 4, {1, 1, 2, 2}, V(6, 8, 12, 14)}, 0},
    {"conv2d stride 2 padding 1", OP_CONV2D,
     {.win = {.stride = {2, 2}, .padding = {1, 1}, .dilation = {1, 1}, .groups = 1}}, 2,
     {{TY_F32, 4, {1, 1, 3, 3}, V(1, 2, 3, 4, 5, 6, 7, 8, 9)},
     {TY_F32, 4, {1, 1, 3, 3}, V(1, 1, 1, 1, 1, 1, 1, 1, 1)}},
     {TY_F32, 4, {1, 1, 2, 2}, V(12, 16, 24, 28)}, 0},
    {"conv2d groups 2 dilation 2", OP_CONV2D,
     {.win = {.stride = {1, 1}, .dilation = {2, 2}, .groups = 2}}, 2,
     {{TY_F32, 4, {1, 2, 3, 3}, V(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)},
     {TY_F32, 4, {2, 1, 2, 2}, V(1, 1, 1, 1, 1, 0, 0, -1)}},
     {TY_F32, 4, {1, 2, 1, 1}, V(20, -8)}, 0},
    {"conv2d_backward_input", OP_CONV2D_BACKWARD_INPUT,
     {.shape = {4, {1, 1, 3, 3}}, .win = {.stride = {1, 1}, .dilation = {1, 1}, .groups = 1}}, 2,
     {{TY_F32, 4, {1, 1, 2, 2}, V(1, 2, 3, 4)}, {TY_F32, 4, {1, 1, 2, 2}, V(1, 0, 0, 1)}},
     {TY_F32, 4, {1, 1, 3, 3}, V(1, 2, 0, 3, 5, 2, 0, 3, 4)}, 0},
    {"conv2d_backward_weight", OP_CONV2D_BACKWARD_WEIGHT,
     {.shape = {4, {1, 1, 2, 2}}, .win = {.stride = {1, 1}, .dilation = {1, 1}, .groups = 1}}, 2,
     {{TY_F32, 4, {1, 1, 3, 3}, V(1, 2, 3, 4, 5, 6, 7, 8, 9)},
     {TY_F32, 4, {1, 1, 2, 2}, V(1, 0, 0, 1)}},
     {TY_F32, 4, {1, 1, 2, 2}, V(6, 8, 12, 14)}, 0},
    {"max_pool2d", OP_MAX_POOL2D, {.win = {.kernel = {2, 2}, .stride = {2, 2}}}, 1,
     {{TY_F32, 4, {1, 1, 4, 4}, V(1, 2, 5, 3, 4, 0, 1, 1, 7, 7, 2, 8, 0, 7, 9, 1)}},
     {TY_F32, 4, {1, 1, 2, 2}, V(4, 5, 7, 9)}, 0},
    {"max_pool2d pads with -inf", OP_MAX_POOL2D,
     {.win = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}}, 1,
     {{TY_F32, 4, {1, 1, 3, 3}, V(-1, -2, -3, -4, -5, -6, -7, -8, -9)}},
     {TY_F32, 4, {1, 1, 2, 2}, V(-1, -2, -4, -5)}, 0},
    {"max_pool2d_index first maximum", OP_MAX_POOL2D_INDEX,
     {.win = {.kernel = {2, 2}, .stride = {2, 2}}}, 1,
     {{TY_F32, 4, {1, 1, 4, 4}, V(1, 3, 3, 0, 3, 0, 2, 2, 5, 5, 1, 1, 5, 5, 1, 1)}},
     {TY_I32, 4, {1, 1, 2, 2}, V(1, 2, 8, 10)}, 0},
    {"max_pool2d_index flat over the batch", OP_MAX_POOL2D_INDEX,
     {.win = {.kernel = {2, 2}, .stride = {2, 2}}}, 1,
     {{TY_F32, 4, {2, 1, 2, 2}, V(1, 2, 3, 4, 8, 7, 6, 5)}},
     {TY_I32, 4, {2, 1, 1, 1}, V(3, 4)}, 0},
    {"avg_pool2d", OP_AVG_POOL2D, {.win = {.kernel = {2, 2}, .stride = {1, 1}}}, 1,
     {{TY_F32, 4, {1, 1, 3, 3}, V(1, 2, 3, 4, 5, 6, 7, 8, 9)}},
     {TY_F32, 4, {1, 1, 2, 2}, V(3, 4, 6, 7)}, 0},
    {"avg_pool2d padded zeros count", OP_AVG_POOL2D,
     {.win = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}}, 1,
     {{TY_F32, 4, {1, 1, 3, 3}, V(1, 2, 3, 4, 5, 6, 7, 8, 9)}},
     {TY_F32, 4, {1, 1, 2, 2}, V(12 / 9.0, 16 / 9.0, 24 / 9.0, 28 / 9.0)}, 1e-6},
    {"avg_pool2d_backward", OP_AVG_POOL2D_BACKWARD,
     {.shape = {4, {1, 1, 3, 3}}, .win = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}},
     1, {{TY_F32, 4, {1, 1, 2, 2}, V(9, 18, 27, 36)}},
     {TY_F32, 4, {1, 1, 3, 3}, V(1, 3, 2, 4, 10, 6, 3, 7, 4)}, 1e-6},

    /* -- attention: softmax([1, 0]) = [e, 1] / (e + 1) -- */
    {"attention", OP_ATTENTION, {.scale = 1}, 3,
     {{TY_F32, 2, {1, 2}, V(1, 0)}, {TY_F32, 2, {2, 2}, V(1, 0, 0, 1)},
      {TY_F32, 2, {2, 2}, V(1, 2, 3, 4)}},
     {TY_F32, 2, {1, 2}, V(1.5378828427399903, 2.5378828427399903)}, 1e-6},
    {"attention causal len 1: query 0 sees no key (0), query 1 key 0", OP_ATTENTION,
     {.scale = 1, .causal = true}, 4,
     {{TY_F32, 2, {2, 2}, V(1, 0, 0, 1)}, {TY_F32, 2, {2, 2}, V(1, 0, 0, 1)},
      {TY_F32, 2, {2, 2}, V(1, 2, 3, 4)}, {TY_I32, 0, {0}, V(1)}},
     {TY_F32, 2, {2, 2}, V(0, 0, 1, 2)}, 1e-6},
    /* rows 1..2 of each batch replaced; the rest kept */
    {"write_rows at 1 of [2, 4, 1]", OP_WRITE_ROWS, {0}, 3,
     {{TY_F32, 3, {2, 4, 1}, V(0, 1, 2, 3, 4, 5, 6, 7)},
      {TY_F32, 3, {2, 2, 1}, V(10, 11, 12, 13)},
      {TY_I32, 0, {0}, V(1)}},
     {TY_F32, 3, {2, 4, 1}, V(0, 10, 11, 3, 4, 12, 13, 7)}, 0},

    /* -- attention's fused backward: values from numpy in double
     * (q [2, 2], k [3, 2], v [3, 2], gy [2, 2], scale 0.5) -- */
    {"attention_lse: log(e + 1)", OP_ATTENTION_LSE, {.scale = 1}, 2,
     {{TY_F32, 2, {1, 2}, V(1, 0)}, {TY_F32, 2, {2, 2}, V(1, 0, 0, 1)}},
     {TY_F32, 1, {1}, V(1.3132616875182228)}, 1e-6},
    {"attention_lse causal len 1: query 0 sees no key (-inf)", OP_ATTENTION_LSE,
     {.scale = 1, .causal = true}, 3,
     {{TY_F32, 2, {2, 2}, V(1, 0, 0, 1)}, {TY_F32, 2, {2, 2}, V(1, 0, 0, 1)},
      {TY_I32, 0, {0}, V(1)}},
     {TY_F32, 1, {2}, V(-INFINITY, 0)}, 1e-6},
#define ATT_IN(lse0, lse1, d0, d1)                                                                 \
    {{TY_F32, 2, {2, 2}, V(1, 0, 0.5, 1)}, {TY_F32, 2, {3, 2}, V(1, 0, 0, 1, 1, 1)},              \
     {TY_F32, 2, {3, 2}, V(1, 2, 3, 4, -1, 0.5)}, {TY_F32, 2, {2, 2}, V(1, 0, -0.5, 2)},          \
     {TY_F32, 1, {2}, V(lse0, lse1)}, {TY_F32, 1, {2}, V(d0, d1)}
    {"attention_grad dq, causal len 2: query 0 sees key 0 alone (dq 0)", OP_ATTENTION_GRAD,
     {.scale = 0.5, .causal = true, .axis = 0}, 7,
     ATT_IN(0.5, 1.0759394198788437, 1.0, 5.186529502657394), {TY_I32, 0, {0}, V(2)}},
     {TY_F32, 2, {2, 2}, V(0, 0, -0.36920112410639744, 0.36920112410639755)}, 1e-6},
    {"attention_grad dk, causal len 2: key 2 unseen", OP_ATTENTION_GRAD,
     {.scale = 0.5, .causal = true, .axis = 1}, 7,
     ATT_IN(0.5, 1.0759394198788437, 1.0, 5.186529502657394), {TY_I32, 0, {0}, V(2)}},
     {TY_F32, 2, {3, 2},
      V(-0.18460056205319872, -0.36920112410639744, 0.18460056205319877, 0.36920112410639755, 0,
        0)}, 1e-6},
    {"attention_grad dv, causal len 2", OP_ATTENTION_GRAD,
     {.scale = 0.5, .causal = true, .axis = 2}, 7,
     ATT_IN(0.5, 1.0759394198788437, 1.0, 5.186529502657394), {TY_I32, 0, {0}, V(2)}},
     {TY_F32, 2, {3, 2},
      V(0.7810882504428991, 0.8756469982284038, -0.28108825044289903, 1.1243530017715961, 0, 0)},
     1e-6},
    {"attention_grad dk, no mask", OP_ATTENTION_GRAD, {.scale = 0.5, .axis = 1}, 6,
     ATT_IN(1.4580200879470335, 1.6193380844056782, 0.698089612856696, 3.6410296041801153)},
     {TY_F32, 2, {3, 2},
      V(0.04894913819985698, -0.017930166292224027, 0.5011837707261635, 0.46672096445510153,
        -0.5501329089260208, -0.448790798162878)}, 1e-6},
    {"attention_grad dq, no mask", OP_ATTENTION_GRAD, {.scale = 0.5, .axis = 0}, 6,
     ATT_IN(1.4580200879470335, 1.6193380844056782, 0.698089612856696, 3.6410296041801153)},
     {TY_F32, 2, {2, 2},
      V(-0.2678232884986128, -0.05791422134596913, -0.466720964455102, 0.01793016629222355)},
     1e-6},
    {"attention_grad dv, causal len 1: query 0's lse is -inf, query 1 sees key 0",
     OP_ATTENTION_GRAD, {.scale = 0.5, .causal = true, .axis = 2}, 7,
     ATT_IN(-INFINITY, 0.25, 0, 3.5), {TY_I32, 0, {0}, V(1)}},
     {TY_F32, 2, {3, 2}, V(-0.5, 2, 0, 0, 0, 0)}, 1e-6},
#undef ATT_IN

    /* -- INT8 quantization: exact integers, computed by hand -- */
    {"quantize ties to even, both signs, saturation, specials", OP_QUANTIZE, {0}, 3,
     {{TY_F32, 1, {14}, V(0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5, 0.49999997, 1000, -1000,
                          NAN, INFINITY, -INFINITY)},
      {TY_F32, 1, {14}, V(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)},
      {TY_I32, 1, {14}, V(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)}},
     {TY_I8, 1, {14}, V(0, 2, 2, 4, 0, -2, -2, -4, 0, 127, -128, 0, 127, -128)}, 0},
    {"quantize scale 0.5, zero point 3: ties, then saturation after the zero point",
     OP_QUANTIZE, {0}, 3,
     {{TY_F32, 1, {8}, V(0.25, 0.75, -0.25, -0.75, 62, 64, -65.5, -66)},
      {TY_F32, 1, {8}, V(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)},
      {TY_I32, 1, {8}, V(3, 3, 3, 3, 3, 3, 3, 3)}},
     {TY_I8, 1, {8}, V(3, 5, 3, 1, 127, 127, -128, -128)}, 0},
    {"quantize zero point -128 and per-element scales", OP_QUANTIZE, {0}, 3,
     {{TY_F32, 2, {2, 3}, V(0, 1, -1, 1, 1, 0.3)},
      {TY_F32, 2, {2, 3}, V(0.1, 0.1, 0.1, 0.25, 4, 0.2)},
      {TY_I32, 2, {2, 3}, V(-128, -128, -128, 7, 7, -1)}},
     {TY_I8, 2, {2, 3}, V(-128, -118, -128, 11, 7, 1)}, 0},
    {"dequantize: (q - zero point) * scale", OP_DEQUANTIZE, {0}, 3,
     {{TY_I8, 1, {6}, V(-128, 127, 0, 5, -128, 1)},
      {TY_F32, 1, {6}, V(0.5, 0.5, 0.5, 0.5, 0.1, 0.25)},
      {TY_I32, 1, {6}, V(0, 0, 3, -2, -128, 127)}},
     {TY_F32, 1, {6}, V(-64, 63.5, -1.5, 3.5, 0, -31.5)}, 0},
    {"requantize to i8: ties to even, zero point, saturation", OP_REQUANTIZE, {.dtype = TY_I8}, 3,
     {{TY_I32, 1, {10}, V(5, -5, 7, -7, 3, -3, 1000, -1000, IMAX, IMIN)},
      {TY_F32, 1, {10}, V(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)},
      {TY_I32, 1, {10}, V(0, 0, -1, -1, 0, 0, 0, 0, 0, 0)}},
     {TY_I8, 1, {10}, V(2, -2, 3, -5, 2, -2, 127, -128, 127, -128)}, 0},
    {"requantize to i8: the product rounds in double", OP_REQUANTIZE, {.dtype = TY_I8}, 3,
     {{TY_I32, 1, {3}, V(1, 3, 254)},
      {TY_F32, 1, {3}, V(0.25, 0.25, 0.5)},
      {TY_I32, 1, {3}, V(0, 0, 0)}},
     {TY_I8, 1, {3}, V(0, 1, 127)}, 0},
    {"requantize to f32: acc * scale rounded once", OP_REQUANTIZE, {.dtype = TY_F32}, 3,
     {{TY_I32, 1, {4}, V(16777217, -3, IMAX, IMIN)},
      {TY_F32, 1, {4}, V(1, 0.5, 1, 0.25)},
      {TY_I32, 1, {4}, V(0, 0, 0, 0)}},
     {TY_F32, 1, {4}, V(16777216, -1.5, 2147483648.0, -536870912.0)}, 0},
    {"qmatmul: int8 products summed in i32", OP_QMATMUL, {0}, 2,
     {{TY_I8, 2, {2, 2}, V(1, 2, 3, 4)}, {TY_I8, 2, {2, 2}, V(127, -128, -128, 127)}},
     {TY_I32, 2, {2, 2}, V(-129, 126, -131, 124)}, 0},
    {"qmatmul extremes past the i16 range, batched", OP_QMATMUL, {0}, 2,
     {{TY_I8, 3, {2, 1, 3}, V(-128, -128, -128, 127, 127, 127)},
      {TY_I8, 3, {2, 3, 1}, V(-128, -128, -128, -128, -128, -128)}},
     {TY_I32, 3, {2, 1, 1}, V(49152, -48768)}, 0},
    {"max_pool2d of i8: the padding never wins, even over -128", OP_MAX_POOL2D,
     {.win = {.kernel = {2, 2}, .stride = {2, 2}, .padding = {1, 1}}}, 1,
     {{TY_I8, 4, {1, 1, 2, 3}, V(-128, -128, 5, -7, 127, -3)}},
     {TY_I8, 4, {1, 1, 2, 2}, V(-128, 5, -7, 127)}, 0},
    {"qconv2d: the padding reads the zero point (-5), i32 sums", OP_QCONV2D,
     {.win = {.stride = {1, 1}, .padding = {1, 1}, .dilation = {1, 1}, .groups = 1}, .value = -5},
     2, {{TY_I8, 4, {1, 1, 2, 2}, V(1, 2, 3, 4)}, {TY_I8, 4, {1, 1, 2, 2}, V(1, -1, 2, 127)}},
     {TY_I32, 4, {1, 1, 3, 3}, V(117, 256, -631, 365, 513, -620, -653, -646, -636)}, 0},
    {"qconv2d: groups, dilation, extremes past the i16 range", OP_QCONV2D,
     {.win = {.stride = {1, 1}, .dilation = {1, 2}, .groups = 2}}, 2,
     {{TY_I8, 4, {1, 2, 1, 3}, V(-128, -128, -128, 127, 127, 127)},
      {TY_I8, 4, {2, 1, 1, 2}, V(-128, -128, 127, -128)}},
     {TY_I32, 4, {1, 2, 1, 1}, V(32768, -127)}, 0},
};
/* clang-format on */

#define NCASES ((int)(sizeof kcases / sizeof kcases[0]))

/* -- helpers -- */

static Shape tv_shape(const TV *t) {
    return shape_make(t->ndim, t->d);
}

static void *tv_data(const TV *t) {
    Shape s = tv_shape(t);
    int64_t n = shape_numel(&s);
    void *p = calloc(n > 0 ? (size_t)n : 1, dtype_size(t->dt));
    for (int64_t i = 0; i < n; i++) {
        double v = t->v[i];
        switch (t->dt) {
        case TY_F32:
            ((float *)p)[i] = (float)v;
            break;
        case TY_I32:
            ((int32_t *)p)[i] = (int32_t)v;
            break;
        case TY_I8:
            ((int8_t *)p)[i] = (int8_t)v;
            break;
        default:
            cr_assert_fail("bad dtype");
        }
    }
    return p;
}

static double load(DType dt, const void *p, int64_t i) {
    switch (dt) {
    case TY_F32:
        return ((const float *)p)[i];
    case TY_I32:
        return ((const int32_t *)p)[i];
    case TY_I8:
        return ((const int8_t *)p)[i];
    default:
        return NAN;
    }
}

static bool close_enough(double got, double want, double tol, DType dt) {
    if (isnan(want)) return isnan(got);
    if (isnan(got)) return false;
    if (dt == TY_F32) want = (float)want; /* the f32 nearest the literal */
    if (tol == 0 || isinf(want)) return got == want;
    return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

/* Checks data against a literal; "what" names the tensor in messages. */
static void expect_tv(const char *what, const TV *want, DType dt, const void *data, double tol) {
    Shape s = tv_shape(want);
    int64_t n = shape_numel(&s);
    for (int64_t i = 0; i < n; i++) {
        double got = load(dt, data, i);
        cr_expect(close_enough(got, want->v[i], tol, dt), "%s: element %lld: got %.9g, want %.9g",
                  what, (long long)i, got, want->v[i]);
    }
}

/* Builds the case as inputs -> one node -> output, runs it, checks it. */
static void run_case(const KCase *c) {
    IrGraph g;
    ir_init(&g);
    int ids[MAXIN];
    void *ins[MAXIN] = {0};
    for (int k = 0; k < c->nin; k++) {
        ids[k] = ir_input(&g, c->in[k].dt, tv_shape(&c->in[k]), NULL, SRCLOC_NONE);
        cr_assert(ids[k] >= 0, "%s: ir_input: %s", c->name, g.err);
        ins[k] = tv_data(&c->in[k]);
    }
    int id = ir_add(&g, c->op, c->nin ? ids : NULL, c->nin, &c->attr, SRCLOC_NONE);
    cr_assert(id >= 0, "%s: ir_add: %s", c->name, g.err);
    const IrNode *x = ir_node(&g, id);
    Shape want = tv_shape(&c->out);
    char b1[128], b2[128];
    cr_assert(x->dtype == c->out.dt && shape_eq(&x->shape, &want), "%s: result is %s%s, want %s%s",
              c->name, dtype_name(x->dtype), shape_str(&x->shape, b1, sizeof b1),
              dtype_name(c->out.dt), shape_str(&want, b2, sizeof b2));
    ir_mark_output(&g, id);
    int64_t n = shape_numel(&want);
    void *out = calloc(n > 0 ? (size_t)n : 1, dtype_size(c->out.dt));
    void *outs[1] = {out};
    RtProfile prof = {0};
    KernelErr err;
    cr_expect(rt_naive_run(&g, ins, outs, &prof, &err), "%s: failed: %s", c->name, err.msg);
    cr_expect_eq(prof.calls[c->op], 1, "%s: kernel ran %lld times", c->name,
                 (long long)prof.calls[c->op]);
    expect_tv(c->name, &c->out, c->out.dt, out, c->tol);
    free(out);
    for (int k = 0; k < c->nin; k++) free(ins[k]);
    ir_free(&g);
}

/* -- kern_table -- */

/* Parameters are indices: Criterion copies parameter bytes into the test
 * process, where the table's pointers would not be valid. */
ParameterizedTestParameters(kern_table, cases) {
    static int index[NCASES];
    for (int i = 0; i < NCASES; i++) index[i] = i;
    return cr_make_param_array(int, index, NCASES);
}

ParameterizedTest(int *i, kern_table, cases) {
    run_case(&kcases[*i]);
}

Test(kern_table, every_op_has_a_case) {
    for (int op = 0; op < OP__COUNT; op++) {
        if (op == OP_INPUT) continue; /* see kern_naive */
        bool found = false;
        for (int i = 0; i < NCASES && !found; i++) found = kcases[i].op == (OpKind)op;
        cr_expect(found, "op '%s' has no hand-checked case in test_kernels.c", ir_ops[op].name);
    }
}

Test(kern_table, every_op_has_a_kernel) {
    for (int op = 0; op < OP__COUNT; op++)
        cr_expect(rt_ref_kernels[op] != NULL, "op '%s' has no kernel", ir_ops[op].name);
}

/* -- kern_direct: kernels called without a graph -- */

/* rmax over an empty axis (the shape rule refuses it; the kernel defines it):
 * -inf for floats, the type's minimum for integers. */
Test(kern_direct, rmax_empty_reduction) {
    IrNode node = {.op = OP_RMAX, .attr = {.axes = 2}};
    float f[2] = {0};
    int32_t i[2] = {0};
    int8_t b[2] = {0};
    KTensor fin = {TY_F32, {2, {2, 0}}, NULL}, fout = {TY_F32, {1, {2}}, f};
    KTensor iin = {TY_I32, {2, {2, 0}}, NULL}, iout = {TY_I32, {1, {2}}, i};
    KTensor bin = {TY_I8, {2, {2, 0}}, NULL}, bout = {TY_I8, {1, {2}}, b};
    KernelErr err = {0};
    kern_rmax_ref(&node, &fin, &fout, &err);
    kern_rmax_ref(&node, &iin, &iout, &err);
    kern_rmax_ref(&node, &bin, &bout, &err);
    cr_expect(!err.failed);
    for (int k = 0; k < 2; k++) {
        cr_expect(isinf(f[k]) && f[k] < 0);
        cr_expect_eq(i[k], INT32_MIN);
        cr_expect_eq(b[k], INT8_MIN);
    }
}

Test(kern_direct, input_kernel_aborts, .signal = SIGABRT) {
    IrNode node = {.op = OP_INPUT};
    float x = 0;
    KTensor out = {TY_F32, {0, {0}}, &x};
    KernelErr err = {0};
    kern_input_ref(&node, NULL, &out, &err);
}

/* A batched product against a double-precision sum. */
Test(kern_direct, matmul_batched_random) {
    enum { B = 3, M = 5, K = 7, N = 4 };
    static float a[B * M * K], bm[B * K * N], c[B * M * N];
    uint32_t s = 12345;
    for (int i = 0; i < B * M * K; i++)
        a[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
    for (int i = 0; i < B * K * N; i++)
        bm[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
    IrNode node = {.op = OP_MATMUL};
    KTensor in[2] = {{TY_F32, {3, {B, M, K}}, a}, {TY_F32, {3, {B, K, N}}, bm}};
    KTensor out = {TY_F32, {3, {B, M, N}}, c};
    KernelErr err = {0};
    kern_matmul_ref(&node, in, &out, &err);
    cr_expect(!err.failed);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double want = 0;
                for (int p = 0; p < K; p++)
                    want += (double)a[(b * M + i) * K + p] * bm[(b * K + p) * N + j];
                cr_expect_float_eq(c[(b * M + i) * N + j], want, 1e-5);
            }
}

/* -- kern_naive: the runtime -- */

static IrGraph g;
static void g_init(void) {
    ir_init(&g);
}
static void g_fini(void) {
    ir_free(&g);
}

static int must(int id) {
    cr_assert(id >= 0, "builder failed: %s", g.err);
    return id;
}

/* An output that is an INPUT node, one that appears twice, and an input
 * slot the outputs never read (bound to NULL). */
Test(kern_naive, output_is_an_input, .init = g_init, .fini = g_fini) {
    Shape s = shape_make(1, (int64_t[]){3});
    int x = must(ir_input(&g, TY_F32, s, "x", SRCLOC_NONE));
    must(ir_input(&g, TY_F32, s, "unused", SRCLOC_NONE));
    int y = must(ir_binary(&g, OP_ADD, x, x, SRCLOC_NONE));
    ir_mark_output(&g, x);
    ir_mark_output(&g, y);
    ir_mark_output(&g, x);
    float xd[3] = {1, 2, 3}, o0[3], o1[3], o2[3];
    void *ins[2] = {xd, NULL}, *outs[3] = {o0, o1, o2};
    cr_expect(rt_naive_run(&g, ins, outs, NULL, NULL));
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(o0[i], xd[i]);
        cr_expect_eq(o1[i], 2 * xd[i]);
        cr_expect_eq(o2[i], xd[i]);
    }
    cr_expect_eq(xd[0], 1); /* inputs are never written */
}

/* Intermediates with readers at different distances, one read twice by the
 * same node, an output that is also read by later nodes: values must be
 * right and ASan must see no use-after-free, double free or leak. */
Test(kern_naive, frees_intermediates, .init = g_init, .fini = g_fini) {
    Shape s = shape_make(2, (int64_t[]){2, 2});
    int x = must(ir_input(&g, TY_F32, s, "x", SRCLOC_NONE));
    int a = must(ir_binary(&g, OP_ADD, x, x, SRCLOC_NONE)); /* 2x */
    int b = must(ir_binary(&g, OP_MUL, a, a, SRCLOC_NONE)); /* 4x^2 */
    int c = must(ir_unary(&g, OP_NEG, b, SRCLOC_NONE));     /* -4x^2 */
    int d = a;
    for (int i = 0; i < 20; i++) d = must(ir_binary(&g, OP_ADD, d, x, SRCLOC_NONE)); /* 22x */
    int e = must(ir_binary(&g, OP_ADD, c, a, SRCLOC_NONE)); /* -4x^2 + 2x */
    int f = must(ir_binary(&g, OP_SUB, e, d, SRCLOC_NONE)); /* -4x^2 - 20x */
    int r = must(ir_reduce(&g, OP_SUM, f, NULL, 0, false, SRCLOC_NONE));
    ir_mark_output(&g, r);
    ir_mark_output(&g, b);
    float xd[4] = {1, -1, 0.5f, 2}, sum, bo[4];
    void *ins[1] = {xd}, *outs[2] = {&sum, bo};
    cr_expect(rt_naive_run(&g, ins, outs, NULL, NULL));
    double want = 0;
    for (int i = 0; i < 4; i++) {
        want += -4.0 * xd[i] * xd[i] - 20.0 * xd[i];
        cr_expect_eq(bo[i], 4 * xd[i] * xd[i]);
    }
    cr_expect_float_eq(sum, want, 1e-6);
}

/* Only nodes reachable from the outputs run; the profile counts them. */
Test(kern_naive, profile_and_dead_nodes, .init = g_init, .fini = g_fini) {
    int x = must(ir_input(&g, TY_F32, shape_make(2, (int64_t[]){4, 3}), "x", SRCLOC_NONE));
    int w = must(ir_input(&g, TY_F32, shape_make(2, (int64_t[]){3, 5}), "w", SRCLOC_NONE));
    must(ir_unary(&g, OP_EXP, x, SRCLOC_NONE)); /* dead */
    int y = must(ir_matmul(&g, x, w, SRCLOC_NONE));
    int z = must(ir_unary(&g, OP_RELU, y, SRCLOC_NONE));
    ir_mark_output(&g, z);
    float xd[12], wd[15], out[20];
    for (int i = 0; i < 12; i++) xd[i] = (float)i - 6;
    for (int i = 0; i < 15; i++) wd[i] = (float)(i % 4) - 1;
    void *ins[2] = {xd, wd}, *outs[1] = {out};
    RtProfile prof = {0};
    cr_expect(rt_naive_run(&g, ins, outs, &prof, NULL));
    cr_expect_eq(prof.calls[OP_EXP], 0);
    cr_expect_eq(prof.calls[OP_MATMUL], 1);
    cr_expect_eq(prof.calls[OP_RELU], 1);
    cr_expect_eq(prof.calls[OP_INPUT], 0);
    cr_expect_eq(prof.flops[OP_MATMUL], 2 * 4 * 5 * 3);
    cr_expect_eq(prof.bytes[OP_MATMUL], (12 + 15 + 20) * 4);
    cr_expect_eq(prof.bytes[OP_RELU], (20 + 20) * 4);
    cr_expect_eq(prof.seconds[OP_EXP], 0, "the dead exp did not run");
    cr_expect_eq(prof.seconds[OP_INPUT], 0);
    cr_expect_gt(prof.seconds[OP_MATMUL] + prof.seconds[OP_RELU], 0, "the kernels that ran");
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) {
            float acc = 0;
            for (int p = 0; p < 3; p++) acc += xd[i * 3 + p] * wd[p * 5 + j];
            cr_expect_eq(out[i * 5 + j], acc > 0 ? acc : 0);
        }
}

/* A graph with no outputs runs nothing; zero-size tensors flow through. */
Test(kern_naive, zero_size_and_no_outputs, .init = g_init, .fini = g_fini) {
    int x = must(ir_input(&g, TY_F32, shape_make(2, (int64_t[]){0, 4}), "x", SRCLOC_NONE));
    int y = must(ir_unary(&g, OP_RELU, x, SRCLOC_NONE));
    cr_expect(rt_naive_run(&g, (void *[]){NULL}, NULL, NULL, NULL));
    int s = must(ir_reduce(&g, OP_SUM, y, (int[]){0}, 1, false, SRCLOC_NONE));
    ir_mark_output(&g, y);
    ir_mark_output(&g, s);
    float sums[4] = {1, 1, 1, 1};
    cr_expect(rt_naive_run(&g, (void *[]){NULL}, (void *[]){NULL, sums}, NULL, NULL));
    for (int i = 0; i < 4; i++) cr_expect_eq(sums[i], 0);
}

/* -- kern_naive: failing runs -- */

/* A bad index stops the run: false, the gather's node, the first bad index
 * in order (negative ones are out of range too), and nothing leaked (ASan)
 * though an intermediate and an output were live. */
Test(kern_naive, gather_index_out_of_range, .init = g_init, .fini = g_fini) {
    int t = must(ir_input(&g, TY_F32, shape_make(2, (int64_t[]){3, 2}), "t", SRCLOC_NONE));
    int i = must(ir_input(&g, TY_I32, shape_make(1, (int64_t[]){4}), "i", SRCLOC_NONE));
    int e = must(ir_unary(&g, OP_EXP, t, SRCLOC_NONE));
    int r = must(ir_gather(&g, e, i, SRCLOC_NONE));
    int s = must(ir_reduce(&g, OP_SUM, r, NULL, 0, false, SRCLOC_NONE));
    ir_mark_output(&g, e);
    ir_mark_output(&g, s);
    float td[6] = {0}, eo[6], so;
    int32_t bad[4] = {0, 2, 7, -1}, neg[4] = {0, -1, 9, 1}, ok[4] = {2, 2, 0, 1};
    void *outs[2] = {eo, &so};
    KernelErr err;
    cr_expect(!rt_naive_run(&g, (void *[]){td, bad}, outs, NULL, &err));
    cr_expect(err.failed);
    cr_expect_eq(err.node, r);
    cr_expect_str_eq(err.msg, "index 7 out of range for axis of size 3");
    cr_expect(!rt_naive_run(&g, (void *[]){td, neg}, outs, NULL, &err));
    cr_expect_str_eq(err.msg, "index -1 out of range for axis of size 3");
    cr_expect(!rt_naive_run(&g, (void *[]){td, neg}, outs, NULL, NULL)); /* err optional */
    cr_expect(rt_naive_run(&g, (void *[]){td, ok}, outs, NULL, &err), "%s", err.msg);
    cr_expect(!err.failed);
    cr_expect_eq(so, 8.0f); /* 4 rows of exp(0) pairs */
}

Test(kern_naive, scatter_add_index_out_of_range, .init = g_init, .fini = g_fini) {
    int src = must(ir_input(&g, TY_F32, shape_make(2, (int64_t[]){2, 2}), "s", SRCLOC_NONE));
    int i = must(ir_input(&g, TY_I32, shape_make(1, (int64_t[]){2}), "i", SRCLOC_NONE));
    IrAttr at = {.shape = shape_make(2, (int64_t[]){4, 2})};
    int r = must(ir_add(&g, OP_SCATTER_ADD, (int[]){src, i}, 2, &at, SRCLOC_NONE));
    ir_mark_output(&g, r);
    float sd[4] = {1, 2, 3, 4}, out[8];
    int32_t bad[2] = {3, 4};
    KernelErr err;
    cr_expect(!rt_naive_run(&g, (void *[]){sd, bad}, (void *[]){out}, NULL, &err));
    cr_expect_eq(err.node, r);
    cr_expect_str_eq(err.msg, "index 4 out of range for axis of size 4");
}

/* An intermediate of 2^47 bytes: refused without asking malloc (so this
 * runs under ASan too), reported at the node that needed it. */
Test(kern_naive, intermediate_out_of_memory, .init = g_init, .fini = g_fini) {
    int x = must(ir_input(&g, TY_F32, shape_make(2, (int64_t[]){1, 1}), "x", SRCLOC_NONE));
    int b = must(ir_broadcast_to(&g, x, shape_make(2, (int64_t[]){1 << 23, 1 << 22}), SRCLOC_NONE));
    int s = must(ir_reduce(&g, OP_SUM, b, NULL, 0, false, SRCLOC_NONE));
    ir_mark_output(&g, s);
    float xd = 1, so;
    KernelErr err;
    cr_expect(!rt_naive_run(&g, (void *[]){&xd}, (void *[]){&so}, NULL, &err));
    cr_expect_eq(err.node, b);
    cr_expect_str_eq(err.msg,
                     "out of memory: the result f32[8388608, 4194304] of broadcast does not fit");
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* A real allocation failure: with the address space limited (this test's
 * process only: Criterion forks one per test), a 1 GiB intermediate makes
 * calloc return NULL. Not under ASan, whose allocator aborts instead. */
Test(kern_naive, calloc_fails, .init = g_init, .fini = g_fini) {
#ifdef UNDER_ASAN
    cr_skip_test("ASan's allocator aborts on a failed allocation");
#else
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert(f && fscanf(f, "%ld", &pages) == 1);
    fclose(f);
    rlim_t now = (rlim_t)pages * 4096;
    struct rlimit rl = {now + (256u << 20), now + (256u << 20)};
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    int x = must(ir_input(&g, TY_F32, shape_make(1, (int64_t[]){1}), "x", SRCLOC_NONE));
    int b = must(ir_broadcast_to(&g, x, shape_make(1, (int64_t[]){1 << 28}), SRCLOC_NONE));
    int s = must(ir_reduce(&g, OP_SUM, b, NULL, 0, false, SRCLOC_NONE));
    ir_mark_output(&g, s);
    float xd = 1, so;
    KernelErr err;
    cr_expect(!rt_naive_run(&g, (void *[]){&xd}, (void *[]){&so}, NULL, &err));
    cr_expect_eq(err.node, b);
    cr_expect_str_eq(err.msg, "out of memory: the result f32[268435456] of broadcast does not fit");
#endif
}

Test(kern_direct, workspace_out_of_memory) {
    KernelErr err = {0};
    cr_expect_null(kern_try_alloc(&err, (size_t)1 << 50, "accumulators of sum"));
    cr_expect(err.failed);
    cr_expect_str_eq(err.msg, "out of memory: 1125899.9 GB for the accumulators of sum");
    KernelErr ok = {0};
    void *p = kern_try_alloc(&ok, 16, "x");
    cr_expect(p && !ok.failed);
    free(p);
}
