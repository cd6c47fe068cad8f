/* fmt.c - format(x, spec): Python's format-spec mini-language for numbers
 * and strings,
 *
 *   [[fill]align][sign][z][#][0][width][grouping][.precision][type]
 *
 * align < > = ^; sign + - space; z turns a negative zero into 0; # adds
 * 0b/0o/0x or keeps the decimal point; 0 pads with zeros after the sign;
 * grouping , or _; types d b o x X c n (ints), e E f F g G n % (numbers),
 * s (strings), or none: an int as d, a float as its repr (or, with a
 * precision, as g with at least one digit after the point). An empty spec
 * gives str(x). A one-element tensor formats as its number.
 */
#include "builtins_lib.h"
#include "containers.h"
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Spec {
    char fill[5]; /* one character (UTF-8), NUL-terminated */
    char align;   /* < > = ^ or 0 when not given */
    bool zero;    /* the '0' flag: '=' alignment unless one was given (numbers) */
    char sign;    /* + - space, or 0 */
    bool z, alt;
    int64_t width; /* -1: none */
    char group;    /* , _ or 0 */
    int64_t prec;  /* -1: none */
    char type;     /* 0: none */
} Spec;

static int64_t parse_digits(const char **p) {
    int64_t v = 0;
    while (**p >= '0' && **p <= '9') {
        if (v > 100000000) return -2;
        v = v * 10 + (*(*p)++ - '0');
    }
    return v;
}

static void parse_spec(Interp *I, const char *s, Spec *sp) {
    *sp = (Spec){.fill = " ", .width = -1, .prec = -1};
    const char *p = s;
    size_t n = strlen(s);
    size_t k = n ? utf8_step(s, n) : 0;
    bool fill_given = false;
    if (n > k && strchr("<>=^", p[k])) { /* fill then align */
        memcpy(sp->fill, p, k);
        sp->fill[k] = 0;
        sp->align = p[k];
        fill_given = true;
        p += k + 1;
    } else if (n && strchr("<>=^", p[0])) {
        sp->align = *p++;
    }
    if (*p == '+' || *p == '-' || *p == ' ') sp->sign = *p++;
    if (*p == 'z') sp->z = true, p++;
    if (*p == '#') sp->alt = true, p++;
    if (*p == '0') { /* zero padding: fill '0' and, for numbers, '=' alignment */
        sp->zero = !sp->align;
        if (!fill_given) strcpy(sp->fill, "0");
        p++;
    }
    if (*p >= '0' && *p <= '9') sp->width = parse_digits(&p);
    if (*p == ',' || *p == '_') sp->group = *p++;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) rt_error(I, "format(): format specifier missing precision");
        sp->prec = parse_digits(&p);
    }
    if (sp->width == -2 || sp->prec == -2)
        rt_error(I, "format(): too many decimal digits in format string");
    if (*p && strchr("bcdeEfFgGnosxX%", *p)) sp->type = *p++;
    if (*p) rt_error(I, "format(): invalid format specifier \"%s\"", s);
}

/* Inserts the grouping character into the leading digits of body. */
static void group_digits(StrBuf *out, const char *digits, size_t nd, char group, int every) {
    for (size_t i = 0; i < nd; i++) {
        if (i && (nd - i) % (size_t)every == 0) sb_putc(out, group);
        sb_putc(out, digits[i]);
    }
}

/* Pads sign+prefix+body to the width: sign and prefix stay in front of '='
 * padding. body's leading digits (ndig of them) take the grouping, and
 * zero padding with grouping grows them (Python's "0,001,234"). */
static Value finish(Interp *I, const Spec *sp, const char *sign, const char *prefix,
                    const char *body, size_t ndig, int every, char dflt_align) {
    char align = sp->align ? sp->align : sp->zero && dflt_align == '>' ? '=' : dflt_align;
    StrBuf num = {0};
    sb_puts(&num, "");
    size_t head = strlen(sign) + strlen(prefix), rest = strlen(body) - ndig;
    bool zero_grouped = false; /* the zero padding went into the digits */
    if (sp->group && ndig > 0) {
        size_t nd = ndig;
        /* zero padding that groups: pad the digits themselves */
        if (align == '=' && strcmp(sp->fill, "0") == 0 && sp->width > 0) {
            size_t want = (size_t)sp->width > head + rest ? (size_t)sp->width - head - rest : 0;
            while (nd + (nd - 1) / (size_t)every < want) nd++;
            zero_grouped = true;
        }
        char *d = tt_xmalloc(nd + 1);
        memset(d, '0', nd - ndig);
        memcpy(d + nd - ndig, body, ndig);
        group_digits(&num, d, nd, sp->group, every);
        free(d);
        sb_puts(&num, body + ndig);
    } else {
        sb_puts(&num, body);
    }
    size_t len = head + utf8_count(num.s, num.len);
    size_t pad = sp->width > 0 && (size_t)sp->width > len ? (size_t)sp->width - len : 0;
    if (zero_grouped) pad = 0;
    size_t left = align == '>' ? pad : align == '^' ? pad / 2 : 0;
    size_t right = align == '<' ? pad : align == '^' ? pad - pad / 2 : 0;
    size_t mid = align == '=' ? pad : 0;
    StrBuf b = {0};
    sb_puts(&b, "");
    for (size_t i = 0; i < left; i++) sb_puts(&b, sp->fill);
    sb_puts(&b, sign);
    sb_puts(&b, prefix);
    for (size_t i = 0; i < mid; i++) sb_puts(&b, sp->fill);
    sb_puts(&b, num.s);
    for (size_t i = 0; i < right; i++) sb_puts(&b, sp->fill);
    Value r = rt_str(I, b.s, b.len);
    sb_free(&b);
    sb_free(&num);
    return r;
}

static const char *sign_of(const Spec *sp, bool neg) {
    if (neg) return "-";
    return sp->sign == '+' ? "+" : sp->sign == ' ' ? " " : "";
}

static Value format_int(Interp *I, const Spec *sp, int64_t v) {
    char type = sp->type ? sp->type : 'd';
    if (sp->prec >= 0) rt_error(I, "format(): precision not allowed in integer format specifier");
    if (type == 'c') {
        if (sp->sign) rt_error(I, "format(): sign not allowed with integer format specifier 'c'");
        if (v < 0 || v > 0x10ffff) rt_error(I, "format(): %%c arg not in range(0x110000)");
        char c[5] = {0};
        utf8_encode((uint32_t)v, c);
        return finish(I, sp, "", "", c, 0, 3, '>');
    }
    if (sp->group == ',' && type != 'd')
        rt_error(I, "format(): cannot specify ',' with '%c'", type);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    char digits[72];
    int nd = 0, base = type == 'b' ? 2 : type == 'o' ? 8 : (type == 'x' || type == 'X') ? 16 : 10;
    const char *hex = type == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
    char rev[72];
    do {
        rev[nd++] = hex[u % (uint64_t)base];
        u /= (uint64_t)base;
    } while (u);
    for (int i = 0; i < nd; i++) digits[i] = rev[nd - 1 - i];
    digits[nd] = 0;
    const char *prefix = "";
    if (sp->alt)
        prefix = base == 2 ? "0b" : base == 8 ? "0o" : type == 'X' ? "0X" : base == 16 ? "0x" : "";
    return finish(I, sp, sign_of(sp, v < 0), prefix, digits, (size_t)nd, base == 10 ? 3 : 4, '>');
}

/* Python's float format with a precision and no type: g, except that the
 * positional form keeps a digit after the point, which counts against the
 * precision (format(1.0, ".1") is "1e+00", format(1.0, ".2") "1.0"). */
static void general_repr(StrBuf *out, double a, int prec, bool alt) {
    char e[64];
    snprintf(e, sizeof e, "%.*e", prec - 1, a);
    int exp = atoi(strchr(e, 'e') + 1);
    StrBuf t = {0};
    sb_puts(&t, "");
    if (exp >= -4 && exp < prec - 1) {
        sb_printf(&t, "%.*f", prec - 1 - exp, a);
        if (!alt && strchr(t.s, '.')) {
            while (t.len > 0 && t.s[t.len - 1] == '0') t.s[--t.len] = 0;
        }
        if (t.s[t.len - 1] == '.') sb_putc(&t, '0');
        if (!strchr(t.s, '.')) sb_puts(&t, ".0");
        sb_puts(out, t.s);
    } else {
        char *ep = strchr(e, 'e');
        size_t m = (size_t)(ep - e);
        if (!alt && memchr(e, '.', m)) {
            while (m > 0 && e[m - 1] == '0') m--;
            if (m > 0 && e[m - 1] == '.') m--;
        }
        for (size_t i = 0; i < m; i++) sb_putc(out, e[i]);
        sb_puts(out, ep);
    }
    sb_free(&t);
}

static Value format_float(Interp *I, const Spec *sp, double x) {
    char type = sp->type;
    if (type == 'n') {
        if (sp->group) rt_error(I, "format(): cannot specify '%c' with 'n'", sp->group);
        type = 'g';
    }
    bool neg = signbit(x) && !isnan(x);
    double a = fabs(x);
    if (isnan(x) || isinf(x)) {
        bool up = type == 'E' || type == 'F' || type == 'G';
        char body[8];
        snprintf(body, sizeof body, "%s%s", isnan(x) ? (up ? "NAN" : "nan") : (up ? "INF" : "inf"),
                 type == '%' ? "%" : "");
        return finish(I, sp, sign_of(sp, neg), "", body, 0, 3, '>');
    }
    int prec = sp->prec < 0 ? 6 : sp->prec > 1000 ? 1000 : (int)sp->prec;
    const char *alt = sp->alt ? "#" : "";
    char fmt[16];
    StrBuf body = {0};
    sb_puts(&body, "");
    if (!type) {
        if (sp->prec < 0) { /* repr */
            rt_format_float(a, &body);
        } else {
            general_repr(&body, a, prec == 0 ? 1 : prec, sp->alt);
        }
    } else if (type == '%') {
        snprintf(fmt, sizeof fmt, "%%%s.*f%%%%", alt);
        sb_printf(&body, fmt, prec, a * 100);
    } else {
        snprintf(fmt, sizeof fmt, "%%%s.*%c", alt, type);
        sb_printf(&body, fmt, prec, a);
    }
    if (sp->z && neg) { /* a negative value that rounds to zero prints as zero */
        bool zero = true;
        for (const char *c = body.s; *c && *c != 'e' && *c != 'E'; c++)
            if (*c >= '1' && *c <= '9') zero = false;
        if (zero) neg = false;
    }
    size_t ndig = strspn(body.s, "0123456789");
    Value r = finish(I, sp, sign_of(sp, neg), "", body.s, ndig, 3, '>');
    sb_free(&body);
    return r;
}

static Value format_str(Interp *I, const Spec *sp, const Str *s) {
    if (sp->type && sp->type != 's')
        rt_error(I, "format(): unknown format code '%c' for a string", sp->type);
    if (sp->sign) rt_error(I, "format(): sign not allowed in string format specifier");
    if (sp->align == '=')
        rt_error(I, "format(): '=' alignment not allowed in string format specifier");
    if (sp->group) rt_error(I, "format(): cannot specify '%c' with 's'", sp->group);
    size_t n = s->len;
    if (sp->prec >= 0 && (size_t)sp->prec < s->nchars) n = str_offset(s, sp->prec);
    char *body = tt_xmalloc(n + 1);
    memcpy(body, s->s, n);
    body[n] = 0;
    Value r = finish(I, sp, "", "", body, 0, 3, '<');
    free(body);
    return r;
}

Value rt_format_spec(Interp *I, Value x, const char *spec) {
    if (x.kind == V_TENSOR) {
        Tensor *t = (Tensor *)x.o;
        if (shape_numel(&t->shape) != 1)
            rt_error(I, "format(): expected a number or a one-element tensor, got %s",
                     rt_type_name(x));
        x = t->dtype == TY_F32 ? vfloat(rt_to_float(I, x, "format()"))
                               : vint(rt_to_int(I, x, "format()"));
    }
    if (!*spec) { /* str(x) */
        StrBuf b = {0};
        sb_puts(&b, "");
        rt_format(I, x, &b, false);
        Value r = rt_str(I, b.s, b.len);
        sb_free(&b);
        return r;
    }
    Spec sp;
    parse_spec(I, spec, &sp);
    switch (x.kind) {
    case V_BOOL:
    case V_INT: {
        int64_t v = x.kind == V_INT ? x.i : x.b;
        if (sp.type && strchr("eEfFgG%", sp.type)) return format_float(I, &sp, (double)v);
        if (sp.type == 's') rt_error(I, "format(): unknown format code 's' for an int");
        return format_int(I, &sp, v);
    }
    case V_FLOAT:
        if (sp.type && strchr("bcdosxX", sp.type))
            rt_error(I, "format(): unknown format code '%c' for a float", sp.type);
        return format_float(I, &sp, x.f);
    case V_STR:
        return format_str(I, &sp, (const Str *)x.o);
    default:
        rt_error(I, "format(): %s takes no format spec (only numbers and strings do)",
                 rt_type_name(x));
    }
}

/* format(x, spec="") */
BUILTIN(bi_format) {
    (void)self;
    static const char *const names[] = {"x", "spec", NULL};
    Value a[2];
    BIND("format", names, 1, a);
    const char *spec = "";
    if (rt_given(a[1]) && a[1].kind != V_NONE) spec = rt_to_str(I, a[1], "format(): spec");
    if (a[0].kind == V_TENSOR && !((Tensor *)a[0].o)->buf) rt_realize_all(I);
    return rt_format_spec(I, a[0], spec);
}

void lib_register_fmt(Interp *I) {
    rt_define_global(I, "format", rt_builtin(I, "format", bi_format, VNONE));
}
