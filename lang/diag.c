/* diag.c - diagnostics with the source line and a caret under the span. */
#include "diag.h"

#include <stdlib.h>
#include <string.h>

typedef struct SrcFile {
    char *name;
    char *text;
    size_t len;
} SrcFile;

static SrcFile *files;
static int nfiles, capfiles;
static int nerrors;
static FILE *stream;

static FILE *out(void) {
    return stream ? stream : stderr;
}

void diag_set_stream(FILE *f) {
    stream = f;
}
int diag_error_count(void) {
    return nerrors;
}
void diag_reset_count(void) {
    nerrors = 0;
}

const char *diag_add_file(const char *name, const char *text, size_t len) {
    for (int i = 0; i < nfiles; i++) {
        if (strcmp(files[i].name, name) == 0) {
            free(files[i].text);
            files[i].text = tt_xmalloc(len + 1);
            memcpy(files[i].text, text, len);
            files[i].text[len] = 0;
            files[i].len = len;
            return files[i].name;
        }
    }
    SrcFile f = {tt_xstrdup(name), tt_xmalloc(len + 1), len};
    memcpy(f.text, text, len);
    f.text[len] = 0;
    TT_VEC_PUSH(files, nfiles, capfiles, f);
    return f.name;
}

void diag_shutdown(void) {
    for (int i = 0; i < nfiles; i++) {
        free(files[i].name);
        free(files[i].text);
    }
    free(files);
    files = NULL;
    nfiles = capfiles = 0;
}

static const SrcFile *find_file(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < nfiles; i++)
        if (files[i].name == name || strcmp(files[i].name, name) == 0) return &files[i];
    return NULL;
}

/* A quoted line longer than this is cut to a window around the caret, so a
 * generated 100,000-term line does not flood the terminal. */
enum { QUOTE_MAX = 160, QUOTE_BEFORE = 60 };

/* Prints "   12 |     return x @ w" and the caret line below it. */
static void quote_line(const SrcLoc *loc) {
    const SrcFile *f = find_file(loc->file);
    if (!f || loc->line <= 0) return;
    const char *p = f->text, *end = f->text + f->len;
    for (int l = 1; l < loc->line && p < end; p++)
        if (*p == '\n') l++;
    if (p >= end && loc->line > 1) return;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    int n = (int)(eol - p);
    if (n > 0 && p[n - 1] == '\r') n--;
    int col = loc->col > 0 ? loc->col : 1;
    int width = 1;
    if (loc->end_line == loc->line && loc->end_col > col) width = loc->end_col - col + 1;
    if (col - 1 + width > n && n >= col) width = n - col + 1;
    /* the window [lo, hi) of the line that is shown */
    int lo = 0, hi = n;
    if (n > QUOTE_MAX) {
        lo = col - 1 > QUOTE_BEFORE ? col - 1 - QUOTE_BEFORE : 0;
        if (lo > n) lo = n;
        hi = lo + QUOTE_MAX < n ? lo + QUOTE_MAX : n;
        if (col - 1 + width > hi) width = hi - (col - 1) > 1 ? hi - (col - 1) : 1;
    }
    const char *pre = lo > 0 ? "..." : "", *post = hi < n ? "..." : "";
    FILE *o = out();
    fprintf(o, "%5d | %s%.*s%s\n", loc->line, pre, hi - lo, p + lo, post);
    fprintf(o, "      | %s", lo > 0 ? "   " : "");
    for (int i = lo + 1; i < col; i++) fputc(i - 1 < n && p[i - 1] == '\t' ? '\t' : ' ', o);
    fputc('^', o);
    for (int i = 1; i < width; i++) fputc('~', o);
    fputc('\n', o);
}

static void report(SrcLoc loc, const char *kind, const char *fmt, va_list ap) {
    FILE *o = out();
    if (loc.file && loc.line > 0)
        fprintf(o, "%s:%d:%d: %s: ", loc.file, loc.line, loc.col, kind);
    else if (loc.file)
        fprintf(o, "%s: %s: ", loc.file, kind);
    else
        fprintf(o, "tt: %s: ", kind);
    vfprintf(o, fmt, ap);
    fputc('\n', o);
    quote_line(&loc);
    fflush(o);
}

void diag_error(SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(loc, "error", fmt, ap);
    va_end(ap);
    nerrors++;
}

void diag_warning(SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(loc, "warning", fmt, ap);
    va_end(ap);
}

void diag_note(SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(loc, "note", fmt, ap);
    va_end(ap);
}

void diag_file_error(const char *file, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    SrcLoc loc = {.file = file};
    report(loc, "error", fmt, ap);
    va_end(ap);
    nerrors++;
}
