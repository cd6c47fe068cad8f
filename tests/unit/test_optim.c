/* test_optim.c - the optimizers and the losses agree with PyTorch.
 *
 * Each test runs a small tt program through the whole stack (parser,
 * evaluator, standard library, lazy graph, autodiff, optimizer) and compares
 * the weights after 3 steps with the numbers PyTorch computes for the same
 * problem: tests/unit/optim_reference.py prints the constants below (run it
 * with /usr/bin/python3 to regenerate them).
 *
 * The problem: w f32[3, 2], b f32[2]; loss = mse(x @ w + b, t) on three
 * fixed batches, one per step.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "value.h"

/* ---- PyTorch's numbers (optim_reference.py) ---- */
static const float want_sgd[8] = {0.222945988f,   -0.252747327f, 0.0744128004f, 0.254770279f,
                                  -0.0234403517f, 0.667791367f,  0.31440872f,   -0.159373045f};
static const float want_sgd_plain[8] = {0.370764315f,  -0.23497884f, 0.0428519286f, 0.464406788f,
                                        -0.222619385f, 0.494464517f, 0.241197929f,  -0.193038657f};
static const float want_adam[8] = {0.473439217f,  -0.256867945f, 0.138948321f, 0.721403837f,
                                   -0.470784783f, 0.401542008f,  0.127304375f, -0.176406845f};
static const float want_adam_wd[8] = {0.473007947f,  -0.25512746f, 0.138594478f, 0.721219301f,
                                      -0.470708847f, 0.401163071f, 0.127199233f, -0.175505415f};
static const float want_adamw[8] = {0.471981674f, -0.256127626f, 0.138546079f, 0.719186366f,
                                    -0.46931681f, 0.400392085f,  0.126976475f, -0.175840795f};
static const float want_cross_entropy = 0.476293415f;
static const float want_mse = 0.34375f;
static const float want_bce = 40.1678658f;
static const float want_g_loss = 1.74530303f;
static const float want_g_z[8] = {-0.146359742f, 0.106850937f,  0.0515774339f,  0.0297281779f,
                                  0.116417192f,  -0.115758091f, -0.0399774089f, 0.0161080807f};
static const float want_g_w[12] = {-0.16044873f,   -0.0826805159f, 0.213069737f,   0.0272746906f,
                                   -0.0251986217f, 0.0283919629f,  -0.452843368f,  0.202579215f,
                                   -0.116192289f,  0.038933415f,   -0.0032762906f, -0.0132858232f};
static const float want_g_lnw[4] = {0.028130427f, -0.0159795117f, 0.302789152f, 0.0151946992f};
static const float want_g_lnb[4] = {-0.0497777835f, -0.065388605f, 0.257269442f, -0.0358522236f};

/* ---- the tt side ---- */

static const char *problem =
    "model P {\n"
    "    param w = tensor([[0.5, -0.25], [0.125, 0.75], [-0.5, 0.375]])\n"
    "    param b = tensor([0.1, -0.2])\n"
    "    forward(x) { return x @ w + b }\n"
    "}\n"
    "let xs = [tensor([[1.0, 2.0, 0.5], [-1.0, 0.5, 1.5], [0.25, -0.75, 2.0], [1.5, 1.0, -1.0]]),\n"
    "          tensor([[0.5, -1.0, 1.0], [2.0, 0.25, -0.5], [-1.5, 1.0, 0.75], [0.0, 0.5, 1.0]]),\n"
    "          tensor([[1.0, 1.0, 1.0], [-0.5, -0.5, 2.0], [0.75, 1.25, -0.25], [1.0, -2.0, "
    "0.5]])]\n"
    "let ts = [tensor([[1.0, 0.0], [0.5, 1.0], [-1.0, 2.0], [0.0, -0.5]]),\n"
    "          tensor([[0.25, 0.75], [1.5, -1.0], [0.0, 0.5], [1.0, 1.0]]),\n"
    "          tensor([[-0.5, 0.5], [2.0, 0.0], [0.5, -1.5], [1.0, 0.25]])]\n"
    "let net = P()\n";

static Interp *I;

static void setup(void) {
    I = rt_new_interp();
}
static void teardown(void) {
    rt_free_interp(I);
    I = NULL;
}

static void run(const char *src) {
    int rc = rt_run_source(I, "<test>", src, strlen(src), false);
    cr_assert_eq(rc, 0, "tt program failed:\n%s", src);
}

/* The data of global tensor `name`, flattened. */
static const float *global_data(const char *name, int64_t want_numel) {
    Value v = rt_global(I, name);
    cr_assert_eq(v.kind, V_TENSOR, "%s is not a tensor", name);
    Tensor *t = (Tensor *)v.o;
    cr_assert_eq(shape_numel(&t->shape), want_numel, "%s has %lld elements", name,
                 (long long)shape_numel(&t->shape));
    cr_assert_eq(t->dtype, TY_F32);
    const float *d = rt_data(I, t);
    rt_release(I, v);
    return d;
}

static double global_num(const char *name) {
    Value v = rt_global(I, name);
    double x = rt_to_float(I, v, name);
    rt_release(I, v);
    return x;
}

static void check_close(const char *what, const float *got, const float *want, int n, double tol) {
    for (int i = 0; i < n; i++)
        cr_expect(fabs((double)got[i] - (double)want[i]) <= tol * (1 + fabs((double)want[i])),
                  "%s[%d]: got %.9g, PyTorch %.9g", what, i, got[i], want[i]);
}

/* Runs 3 steps of the optimizer built by `make` and compares w and b. */
static void three_steps(const char *make, const float *want) {
    char src[4096];
    snprintf(src, sizeof src,
             "%slet opt = %s\n"
             "for i in 0..3 {\n"
             "    let loss = mse(net(xs[i]), ts[i])\n"
             "    backward(loss)\n"
             "    opt.step()\n"
             "}\n"
             "let w = net.w\n"
             "let b = net.b\n",
             problem, make);
    run(src);
    check_close("w", global_data("w", 6), want, 6, 1e-5);
    check_close("b", global_data("b", 2), want + 6, 2, 1e-5);
}

TestSuite(optim_torch, .init = setup, .fini = teardown);

Test(optim_torch, sgd_momentum_weight_decay) {
    three_steps("SGD(net, lr=0.1, momentum=0.9, weight_decay=0.01)", want_sgd);
}

Test(optim_torch, sgd_plain) {
    three_steps("SGD(net, lr=0.1)", want_sgd_plain);
}

Test(optim_torch, adam) {
    three_steps("Adam(net, lr=0.01)", want_adam);
}

Test(optim_torch, adam_l2) {
    three_steps("Adam(net, lr=0.01, weight_decay=0.1)", want_adam_wd);
}

Test(optim_torch, adamw) {
    three_steps("AdamW(net, lr=0.01, weight_decay=0.1)", want_adamw);
}

Test(optim_torch, param_list_same_as_model) {
    /* a list of tensors in place of the model: same parameters, same result */
    three_steps("Adam([net.w, net.b], lr=0.01)", want_adam);
}

TestSuite(optim_step, .init = setup, .fini = teardown);

/* The design point: forward, backward and update realize as ONE graph. */
Test(optim_step, one_graph_per_step) {
    run(problem);
    run("let opt = Adam(net, lr=0.01)\n");
    for (int i = 0; i < 3; i++) {
        int before = I->lz.nexec;
        char src[256];
        snprintf(src, sizeof src,
                 "let loss = mse(net(xs[%d]), ts[%d])\nbackward(loss)\nopt.step()\n", i, i);
        run(src);
        cr_expect_eq(I->lz.nexec - before, 1, "step %d ran %d graphs", i, I->lz.nexec - before);
    }
}

/* Step-dependent scalars (lr, bias corrections) are inputs, not constants:
 * the execution graphs of steps 2 and 3 print the same (the JIT caches a
 * step by its structure). */
static char *capture_steps(const char *make) {
    run(problem);
    run(make);
    fflush(stdout);
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    int saved = dup(1);
    dup2(fileno(tmp), 1);
    RtConfig cfg = *rt_config(I);
    cfg.dump_graph = true;
    rt_configure(I, &cfg);
    for (int i = 0; i < 3; i++)
        run("let loss = mse(net(xs[0]), ts[0])\nbackward(loss)\nopt.step()\n");
    cfg.dump_graph = false;
    rt_configure(I, &cfg);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    long n = ftell(tmp);
    rewind(tmp);
    char *text = calloc((size_t)n + 1, 1);
    cr_assert_eq(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

/* The body of execution graph k (1-based) in a dump, or NULL. */
static char *graph_section(const char *text, int k) {
    char head[64];
    snprintf(head, sizeof head, "-- execution graph ");
    const char *p = text;
    for (int i = 0; i < k; i++) {
        p = strstr(p, head);
        if (!p) return NULL;
        p += strlen(head);
    }
    p = strchr(p, '\n');
    if (!p) return NULL;
    const char *e = strstr(p, head);
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char *r = calloc(len + 1, 1);
    memcpy(r, p, len);
    return r;
}

static void same_structure(const char *make) {
    char *text = capture_steps(make);
    char *g2 = graph_section(text, 2), *g3 = graph_section(text, 3);
    cr_assert_not_null(g2, "no second execution graph in:\n%s", text);
    cr_assert_not_null(g3, "no third execution graph in:\n%s", text);
    cr_expect_str_eq(g2, g3);
    free(g2);
    free(g3);
    free(text);
}

Test(optim_step, same_structure_adam) {
    same_structure("let opt = Adam(net, lr=0.01)\n");
}
Test(optim_step, same_structure_adamw) {
    same_structure("let opt = AdamW(net, lr=0.01)\n");
}
Test(optim_step, same_structure_sgd) {
    same_structure("let opt = SGD(net, lr=0.1, momentum=0.9, weight_decay=0.01)\n");
}

Test(optim_step, zero_grad_and_members) {
    run(problem);
    run("let opt = SGD(net, lr=0.5, momentum=0.9)\n"
        "let loss = mse(net(xs[0]), ts[0])\n"
        "backward(loss)\n"
        "opt.zero_grad()\n"
        "let lr = opt.lr\n"
        "let g = net.w.grad\n");
    cr_expect_float_eq(global_num("lr"), 0.5, 1e-12);
    Value g = rt_global(I, "g");
    cr_expect_eq(g.kind, V_NONE, "grad not cleared: %s", rt_type_name(g));
    rt_release(I, g);
}

Test(optim_step, step_without_grads_changes_nothing) {
    run(problem);
    run("let opt = Adam(net, lr=0.5)\nopt.step()\nlet w = net.w\n");
    const float w0[6] = {0.5f, -0.25f, 0.125f, 0.75f, -0.5f, 0.375f};
    check_close("w", global_data("w", 6), w0, 6, 0);
}

/* ---- losses ---- */

TestSuite(optim_losses, .init = setup, .fini = teardown);

Test(optim_losses, cross_entropy) {
    run("let logits = tensor([[1.0, 2.0, 0.5, -1.0], [0.0, -0.5, 3.0, 1.0], [2.5, 2.5, -2.0, "
        "0.0]])\n"
        "let labels = tensor([1, 2, 0], dtype=\"i32\")\n"
        "let v = item(cross_entropy(logits, labels))\n");
    cr_expect_float_eq(global_num("v"), want_cross_entropy, 1e-5);
}

Test(optim_losses, mse) {
    run("let v = item(mse(tensor([[0.5, 1.5], [-1.0, 2.0], [0.25, 0.0]]),\n"
        "                 tensor([[1.0, 1.0], [0.0, 2.5], [0.5, -0.5]])))\n");
    cr_expect_float_eq(global_num("v"), want_mse, 1e-6);
}

Test(optim_losses, bce_clamps_log) {
    run("let v = item(bce(tensor([0.9, 0.2, 0.6, 0.0, 1.0]), tensor([1.0, 0.0, 1.0, 1.0, "
        "0.0])))\n");
    cr_expect_float_eq(global_num("v"), want_bce, 1e-4);
}

/* ---- gradients through the library's composites ---- */

TestSuite(optim_grads, .init = setup, .fini = teardown);

Test(optim_grads, composites_match_torch) {
    run("model G {\n"
        "    param z = tensor([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, -2.0]])\n"
        "    param w = tensor([[0.2, -0.4, 0.1], [0.3, 0.5, -0.2], [-0.6, 0.1, 0.4],\n"
        "                      [0.05, -0.3, 0.25]])\n"
        "    ln = LayerNorm(4)\n"
        "    forward() {\n"
        "        let h = gelu(ln(z)) @ w\n"
        "        return cross_entropy(h, tensor([2, 0], dtype=\"i32\")) +\n"
        "            bce(sigmoid(z), tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])) +\n"
        "            kl_div(log_softmax(h),\n"
        "                   softmax(tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]))) +\n"
        "            mse(h, tensor([[0.1, 0.2, 0.3], [-0.1, 0.0, 0.1]]))\n"
        "    }\n"
        "}\n"
        "let g = G()\n"
        "let loss = g()\n"
        "backward(loss)\n"
        "let v = item(loss)\n"
        "let gz = g.z.grad\n"
        "let gw = g.w.grad\n"
        "let glnw = g.ln.weight.grad\n"
        "let glnb = g.ln.bias.grad\n");
    cr_expect_float_eq(global_num("v"), want_g_loss, 1e-5);
    check_close("z.grad", global_data("gz", 8), want_g_z, 8, 1e-5);
    check_close("w.grad", global_data("gw", 12), want_g_w, 12, 1e-5);
    check_close("ln.weight.grad", global_data("glnw", 4), want_g_lnw, 4, 1e-5);
    check_close("ln.bias.grad", global_data("glnb", 4), want_g_lnb, 4, 1e-5);
}
