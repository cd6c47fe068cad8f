/* builtins_fit.c - fit(): the one-call training loop, with a progress bar on
 * a terminal and an optional SVG loss curve.
 *
 *   fit(net, train, loss=cross_entropy, opt=Adam(net), epochs=1, batch=32,
 *       valid=none, plot=none, shuffle=true)
 *
 * Each batch runs net(x), loss(out, y), backward and opt.step(); the step
 * realizes forward, backward and update as one graph, and the loss value is
 * read afterwards from that same graph. One line per epoch goes to stdout:
 *   epoch 3/20  loss 0.2345  valid accuracy 0.9512
 */
#include "builtins_lib.h"
#include "io_atomic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the loss curve ---- */

/* Writes an SVG line chart of ys to path (built in memory, then written
 * like every save: io_atomic.h). */
static bool write_plot(const char *path, const double *ys, int n, int epochs, char *err,
                       size_t errlen) {
    const double W = 640, H = 360, L = 60, R = 20, T = 30, B = 40;
    double lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || ys[i] < lo) lo = ys[i];
        if (i == 0 || ys[i] > hi) hi = ys[i];
    }
    if (hi <= lo) hi = lo + 1;
    StrBuf b = {0};
    sb_printf(&b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
              "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n",
              W, H, W, H);
    sb_printf(&b, "<rect width=\"%g\" height=\"%g\" fill=\"white\"/>\n", W, H);
    sb_printf(&b,
              "<text x=\"%g\" y=\"18\" text-anchor=\"middle\">training loss (%d batches, "
              "%d epoch%s)</text>\n",
              W / 2, n, epochs, epochs == 1 ? "" : "s");
    sb_printf(&b, "<path d=\"M%g %g V%g H%g\" fill=\"none\" stroke=\"black\"/>\n", L, T, H - B,
              W - R);
    for (int k = 0; k <= 4; k++) {
        double v = lo + (hi - lo) * k / 4, y = H - B - (H - B - T) * k / 4;
        sb_printf(&b, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.4g</text>\n", L - 6, y + 4, v);
        sb_printf(&b, "<path d=\"M%g %g H%g\" stroke=\"#ddd\"/>\n", L, y, W - R);
    }
    sb_printf(&b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">batch</text>\n", (L + W - R) / 2,
              H - 12);
    sb_puts(&b, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int i = 0; i < n; i++) {
        double x = L + (n > 1 ? (W - L - R) * i / (n - 1) : 0);
        double y = H - B - (H - B - T) * (ys[i] - lo) / (hi - lo);
        sb_printf(&b, "%s%.1f,%.1f", i ? " " : "", x, y);
    }
    sb_puts(&b, "\"/>\n</svg>\n");

    IoChunk c = {b.s, b.len};
    bool ok = io_write_atomic(path, &c, 1, err, errlen);
    sb_free(&b);
    return ok;
}

/* ---- progress ---- */

static void progress(int epoch, int epochs, int64_t done, int64_t total, double loss) {
    const int width = 30;
    int fill = total ? (int)(width * done / total) : width;
    fprintf(stderr, "\repoch %d/%d [", epoch, epochs);
    for (int i = 0; i < width; i++) fputc(i < fill ? '=' : i == fill ? '>' : ' ', stderr);
    fprintf(stderr, "] %lld/%lld  loss %.4f", (long long)done, (long long)total, loss);
    fflush(stderr);
}

static void progress_clear(void) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

/* ---- fit ---- */

Value lib_dataset_field(Interp *I, Value d, const char *name, const char *fn, const char *what) {
    Value *v = lib_record_field(d, name);
    if (!v || v->kind != V_TENSOR)
        rt_error(I, "%s: %s must be a data set with fields x and y, got %s", fn, what,
                 rt_type_name(d));
    return *v;
}

static Value data_field(Interp *I, Value d, const char *name, const char *what) {
    return lib_dataset_field(I, d, name, "fit", what);
}

Value lib_optimizer(Interp *I, Value given, Value net) {
    if (given.kind != V_NONE) return rt_retain(given);
    Value adam = rt_global(I, "Adam");
    Value opt = rt_call(I, adam, &net, 1, NULL, NULL, 0);
    rt_release(I, adam);
    return opt;
}

double lib_train_step(Interp *I, Value loss, Value step, const char *fn, const char *what) {
    if (loss.kind != V_TENSOR || shape_numel(&as_tensor(loss)->shape) != 1)
        rt_error(I, "%s: %s must return a one-element tensor, got %s", fn, what,
                 rt_type_name(loss));
    rt_backward(I, as_tensor(loss));
    Value r = rt_call(I, step, NULL, 0, NULL, NULL, 0);
    rt_release(I, r);
    double v = rt_to_float(I, loss, "loss");
    rt_release(I, loss);
    return v;
}

/* fit(net, train, loss=cross_entropy, opt=Adam(net), epochs=1, batch=32,
 *     valid=none, plot=none, shuffle=true) -> (loss=, accuracy=) */
BUILTIN(bi_fit) {
    static const char *const names[] = {"net",   "train", "loss", "opt",     "epochs",
                                        "batch", "valid", "plot", "shuffle", NULL};
    Value a[9];
    BIND("fit", names, 2, a);
    Value net = a[0], train = a[1];
    if (net.kind != V_MODEL && net.kind != V_FUNC && net.kind != V_BUILTIN)
        rt_error(I, "fit: net must be a model, got %s", rt_type_name(net));
    data_field(I, train, "x", "train");
    data_field(I, train, "y", "train");
    if (a[6].kind != V_NONE) {
        data_field(I, a[6], "x", "valid");
        data_field(I, a[6], "y", "valid");
    }
    int64_t epochs = lib_int(I, a[4], 1, "fit", "epochs");
    int64_t batch = lib_int(I, a[5], 32, "fit", "batch");
    bool shuffle = lib_bool(I, a[8], true, "fit", "shuffle");
    if (epochs < 0) rt_error(I, "fit: epochs must not be negative");
    if (batch < 1) rt_error(I, "fit: batch must be positive");
    const char *plot = NULL;
    if (a[7].kind != V_NONE) plot = lib_path(I, a[7], "fit", "plot");
    Value lossfn = a[2].kind != V_NONE ? rt_retain(a[2]) : rt_global(I, "cross_entropy");
    Value opt = lib_optimizer(I, a[3], net);
    Value step = rt_member(I, opt, "step");

    bool tty = isatty(STDERR_FILENO), was_training = I->ev.training;
    double *curve = NULL, last_loss = 0, last_acc = -1;
    int ncurve = 0, capcurve = 0;
    for (int64_t e = 1; e <= epochs; e++) {
        I->ev.training = true;
        Value bl = lib_batches(I, train, batch, shuffle, VNONE, false);
        List *l = as_list(bl);
        double sum = 0;
        for (int i = 0; i < l->len; i++) {
            List *xy = as_list(l->items[i]);
            Value out = rt_call(I, net, &xy->items[0], 1, NULL, NULL, 0);
            Value lv[2] = {out, xy->items[1]};
            Value loss = rt_call(I, lossfn, lv, 2, NULL, NULL, 0);
            rt_release(I, out);
            double lv0 = lib_train_step(I, loss, step, "fit", "the loss function");
            sum += lv0;
            TT_VEC_PUSH(curve, ncurve, capcurve, lv0);
            if (tty) progress((int)e, (int)epochs, i + 1, l->len, sum / (i + 1));
        }
        last_loss = l->len ? sum / l->len : 0;
        rt_release(I, bl);
        if (tty) progress_clear();
        printf("epoch %lld/%lld  loss %.4f", (long long)e, (long long)epochs, last_loss);
        if (a[6].kind != V_NONE) {
            I->ev.training = false;
            Value vx = data_field(I, a[6], "x", "valid");
            Value out = rt_call(I, net, &vx, 1, NULL, NULL, 0);
            last_acc = lib_accuracy(I, out, data_field(I, a[6], "y", "valid"));
            rt_release(I, out);
            rt_reset_graph(I);
            printf("  valid accuracy %.4f", last_acc);
        }
        printf("\n");
        fflush(stdout);
    }
    I->ev.training = was_training;
    rt_release(I, step);
    rt_release(I, opt);
    rt_release(I, lossfn);
    if (plot) {
        char err[512];
        bool ok = write_plot(plot, curve, ncurve, (int)epochs, err, sizeof err);
        free(curve);
        if (!ok) rt_error(I, "fit: %s", err);
    } else {
        free(curve);
    }
    const char *rn[2] = {"loss", "accuracy"};
    Value res = rt_record(I, 2, rn);
    ((Record *)res.o)->vals[0] = vfloat(last_loss);
    ((Record *)res.o)->vals[1] = last_acc >= 0 ? vfloat(last_acc) : VNONE;
    return res;
}

void lib_register_fit(Interp *I) {
    rt_define_global(I, "fit", rt_builtin(I, "fit", bi_fit, VNONE));
}
