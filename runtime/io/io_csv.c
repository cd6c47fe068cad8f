/* io_csv.c - numeric CSV files (optionally gzipped) into an x/y tensor pair.
 *
 *   file   := line*          lines end in "\n" or "\r\n"; blank lines skipped
 *   line   := field ("," field)*
 *   field  := spaces number spaces
 *
 * A first non-blank line whose fields are not all numbers is a header and is
 * skipped. Every data row must have as many fields as the first one. */
#include "io_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Line {
    const char *s, *e; /* [s, e): the line without its "\r\n" */
    int no;            /* 1-based line number */
} Line;

static bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

/* Clinger's fast path: at most 15 digits and a short fraction convert
 * exactly (a 53-bit integer divided by an exact power of ten), as strtod
 * would. Returns the end of the number, or NULL to fall back to strtod. */
static const char *fast_number(const char *p, const char *e, double *v) {
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    bool neg = false;
    if (p < e && (*p == '-' || *p == '+')) neg = *p++ == '-';
    uint64_t m = 0;
    int digits = 0, frac = 0;
    while (p < e && *p >= '0' && *p <= '9') {
        m = m * 10 + (uint64_t)(*p++ - '0');
        if (++digits > 15) return NULL;
    }
    if (p < e && *p == '.') {
        p++;
        while (p < e && *p >= '0' && *p <= '9') {
            m = m * 10 + (uint64_t)(*p++ - '0');
            frac++;
            if (++digits > 15) return NULL;
        }
    }
    if (digits == 0) return NULL;
    if (p < e && (*p == 'e' || *p == 'E' || *p == 'x' || *p == 'X')) return NULL;
    double d = (double)m / pow10[frac];
    *v = neg ? -d : d;
    return p;
}

/* Parses the field starting at *pp in the line [*pp, e): a number between
 * blanks, then a comma or the line's end. On success stores the number,
 * advances *pp past the comma (or to e) and sets *more when a comma was
 * consumed (so another field follows, possibly empty). */
static bool parse_field(const char **pp, const char *e, double *v, bool *more) {
    const char *p = *pp;
    while (p < e && is_blank(*p)) p++;
    /* strtod skips leading whitespace (newlines too): make sure it starts on
     * the number itself so it cannot run into the next line. */
    if (p == e || *p == ',' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f') return false;
    const char *end = fast_number(p, e, v);
    if (!end) {
        char *q;
        *v = strtod(p, &q);
        end = q;
    }
    if (end == p || end > e) return false;
    p = end;
    while (p < e && is_blank(*p)) p++;
    if (p < e && *p != ',') return false;
    *more = p < e;
    *pp = *more ? p + 1 : p;
    return true;
}

/* The text of field i (0-based) in [s, e), for messages. */
static void field_text(const char *s, const char *e, int i, char *buf, size_t len) {
    const char *p = s;
    for (int k = 0; k < i && p < e; k++) {
        const char *c = memchr(p, ',', (size_t)(e - p));
        p = c ? c + 1 : e;
    }
    while (p < e && is_blank(*p)) p++;
    const char *q = memchr(p, ',', (size_t)(e - p));
    if (!q) q = e;
    while (q > p && is_blank(q[-1])) q--;
    size_t n = (size_t)(q - p);
    if (n + 1 > len) {
        n = len > 4 ? len - 4 : 0;
        memcpy(buf, p, n);
        strcpy(buf + n, "...");
        return;
    }
    memcpy(buf, p, n);
    buf[n] = 0;
}

/* Fields in [s, e), saturated at INT32_MAX (a multi-gigabyte line). */
static int count_fields(const char *s, const char *e) {
    int64_t n = 1;
    for (const char *p = s; p < e; p++) n += *p == ',';
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* Next line of the buffer; false at the end. */
static bool next_line(const char **cur, const char *end, Line *ln) {
    if (*cur >= end) return false;
    const char *s = *cur;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    *cur = nl ? nl + 1 : end;
    if (e > s && e[-1] == '\r') e--;
    ln->s = s;
    ln->e = e;
    ln->no++;
    return true;
}

static bool line_blank(const Line *ln) {
    for (const char *p = ln->s; p < ln->e; p++)
        if (!is_blank(*p) && *p != '\r') return false;
    return true;
}

static bool line_numeric(const Line *ln) {
    const char *p = ln->s;
    double v;
    bool more = true;
    while (more)
        if (!parse_field(&p, ln->e, &v, &more)) return false;
    return true;
}

/* The whole input is read (up to the input limit) and parsed in place: the
 * parse needs the row count first to size the tensors. The buffer is
 * NUL-terminated, which keeps strtod inside it. */
static bool read_csv(TtInput *in, int label_col, IoTensor *x, IoTensor *y, char *err,
                     size_t errlen) {
    memset(x, 0, sizeof *x);
    memset(y, 0, sizeof *y);
    const char *path = tt_input_name(in);
    StrBuf sb = {0};
    if (!tt_input_fill(in, &sb, UINT64_MAX, err, errlen)) {
        sb_free(&sb);
        return false;
    }
    char *buf = sb.s;
    size_t len = sb.len;
    const char *cur = buf, *end = buf + len;

    /* The first non-blank line: a header unless every field is a number. */
    Line ln = {0};
    bool have = false;
    while (next_line(&cur, end, &ln))
        if (!line_blank(&ln)) {
            have = true;
            break;
        }
    if (have && !line_numeric(&ln)) {
        have = false;
        while (next_line(&cur, end, &ln))
            if (!line_blank(&ln)) {
                have = true;
                break;
            }
    }
    if (!have) {
        free(buf);
        return io_fail(err, errlen, path, "no data rows");
    }

    int ncols = count_fields(ln.s, ln.e);
    int lc = -1;
    if (label_col != INT32_MIN) {
        lc = label_col < 0 ? ncols + label_col : label_col;
        if (lc < 0 || lc >= ncols) {
            free(buf);
            return io_fail(err, errlen, path,
                           "label column %d is out of range (rows have %d fields)", label_col,
                           ncols);
        }
        if (ncols < 2) {
            free(buf);
            return io_fail(err, errlen, path,
                           "rows have a single field: nothing is left besides the label");
        }
    }
    int xcols = lc >= 0 ? ncols - 1 : ncols;

    /* Upper bound on the rows: this line, the lines after it ended by a
     * newline, and a last line without one. */
    int64_t maxrows = 2;
    for (const char *p = cur; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) maxrows++;
    /* A row of ncols fields takes at least 2 * ncols bytes with its newline:
     * keeps a long first line followed by many short ones from asking for
     * rows * cols memory far beyond the file's size. */
    int64_t bysize = (int64_t)(end - ln.s + 1) / (2 * (int64_t)ncols) + 1;
    if (bysize < maxrows) maxrows = bysize;
    float *xs = tt_xmalloc((size_t)maxrows * (size_t)xcols * sizeof *xs);
    int32_t *ys = lc >= 0 ? tt_xmalloc((size_t)maxrows * sizeof *ys) : NULL;
    int64_t rows = 0;
    char text[48];

    do {
        if (line_blank(&ln)) continue;
        TT_ASSERT(rows < maxrows);
        const char *p = ln.s;
        float *xr = xs + rows * xcols;
        bool more = true;
        for (int i = 0; i < ncols; i++) {
            double v;
            if (!more || !parse_field(&p, ln.e, &v, &more)) {
                int nf = count_fields(ln.s, ln.e);
                if (nf != ncols) goto count_mismatch;
                field_text(ln.s, ln.e, i, text, sizeof text);
                if (text[0])
                    snprintf(err, errlen, "%s:%d: field %d is not a number: '%s'", path, ln.no,
                             i + 1, text);
                else
                    snprintf(err, errlen, "%s:%d: field %d is empty", path, ln.no, i + 1);
                goto fail;
            }
            if (i == lc) {
                if (!(v == floor(v)) || v < INT32_MIN || v > INT32_MAX) {
                    field_text(ln.s, ln.e, i, text, sizeof text);
                    snprintf(err, errlen, "%s:%d: label (field %d) is not an integer: '%s'", path,
                             ln.no, i + 1, text);
                    goto fail;
                }
                ys[rows] = (int32_t)v;
            } else {
                *xr++ = (float)v;
            }
        }
        if (more) goto count_mismatch;
        rows++;
    } while (next_line(&cur, end, &ln));
    free(buf);

    x->dtype = TY_F32;
    x->shape.ndim = 2;
    x->shape.d[0] = rows;
    x->shape.d[1] = xcols;
    x->data = tt_xrealloc(xs, (size_t)rows * (size_t)xcols * sizeof *xs);
    if (ys) {
        y->dtype = TY_I32;
        y->shape.ndim = 1;
        y->shape.d[0] = rows;
        y->data = tt_xrealloc(ys, (size_t)rows * sizeof *ys);
    }
    return true;

count_mismatch:
    snprintf(err, errlen, "%s:%d: expected %d fields, got %d", path, ln.no, ncols,
             count_fields(ln.s, ln.e));
fail:
    free(xs);
    free(ys);
    free(buf);
    return false;
}

bool io_load_csv(const char *path, int label_col, IoTensor *x, IoTensor *y, char *err,
                 size_t errlen) {
    memset(x, 0, sizeof *x);
    memset(y, 0, sizeof *y);
    TtInput *in = tt_input_open(path, true, err, errlen);
    if (!in) return false;
    bool ok = read_csv(in, label_col, x, y, err, errlen);
    tt_input_close(in);
    return ok;
}

bool io_parse_csv(const char *what, const void *data, size_t len, int label_col, IoTensor *x,
                  IoTensor *y, char *err, size_t errlen) {
    memset(x, 0, sizeof *x);
    memset(y, 0, sizeof *y);
    TtInput *in = tt_input_memory(what, data, len, err, errlen);
    if (!in) return false;
    bool ok = read_csv(in, label_col, x, y, err, errlen);
    tt_input_close(in);
    return ok;
}
