/* repl.c - gathering REPL lines into entries and commands (see repl.h). */
#include "repl.h"

#include <stdio.h>
#include <string.h>

#include "ast.h"

static void put_bytes(StrBuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) sb_putc(b, s[i]);
}

static void clear(StrBuf *b) {
    b->len = 0;
    if (b->s) b->s[0] = 0;
}

static bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

static bool blank_text(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_blank(s[i]) && s[i] != '\n' && s[i] != '\r') return false;
    return true;
}

/* Splits ":name arg" (in r->line) into r->cmd. */
static void parse_command(ReplLines *r) {
    static const struct {
        const char *name;
        ReplCmdKind kind;
        bool needs_arg;
    } cmds[] = {{":quit", REPL_CMD_QUIT, false}, {":q", REPL_CMD_QUIT, false},
                {":help", REPL_CMD_HELP, false}, {":backend", REPL_CMD_BACKEND, false},
                {":ir", REPL_CMD_IR, true},      {":profile", REPL_CMD_PROFILE, true}};
    char *s = r->line.s;
    while (is_blank(*s)) s++;
    size_t n = 0;
    while (s[n] && !is_blank(s[n])) n++;
    char *arg = s + n;
    while (is_blank(*arg)) arg++;
    size_t alen = strlen(arg);
    while (alen && (is_blank(arg[alen - 1]) || arg[alen - 1] == '\r')) arg[--alen] = 0;
    r->cmd = (ReplCmd){REPL_CMD_UNKNOWN, s, arg};
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        if (strlen(cmds[k].name) != n || memcmp(cmds[k].name, s, n) != 0) continue;
        if (!cmds[k].needs_arg || alen > 0) r->cmd.kind = cmds[k].kind;
        return;
    }
}

ReplStep repl_feed(ReplLines *r, const char *line, size_t len) {
    if (r->done) {
        clear(&r->entry);
        r->done = false;
    }
    if (r->entry.len == 0) {
        size_t i = 0;
        while (i < len && is_blank(line[i])) i++;
        if (i < len && line[i] == ':') {
            /* a command line ends at a NUL byte, like any C string */
            clear(&r->line);
            put_bytes(&r->line, line, strnlen(line, len));
            parse_command(r);
            return REPL_COMMAND;
        }
    }
    put_bytes(&r->entry, line, len);
    sb_putc(&r->entry, '\n');
    if (parse_is_incomplete(r->entry.s, r->entry.len)) return REPL_MORE;
    r->done = true;
    if (blank_text(r->entry.s, r->entry.len)) return REPL_BLANK;
    /* each entry is its own source so older locations (a fn defined three
     * entries ago) still quote the right line */
    snprintf(r->name, sizeof r->name, "<stdin:%d>", ++r->nentries);
    return REPL_ENTRY;
}

void repl_cancel(ReplLines *r) {
    clear(&r->entry);
    r->done = false;
}

bool repl_finish(ReplLines *r) {
    if (r->done || blank_text(r->entry.s, r->entry.len)) return false;
    snprintf(r->name, sizeof r->name, "<stdin:%d>", ++r->nentries);
    r->done = true;
    return true;
}

const char *repl_prompt(const ReplLines *r) {
    return r->entry.len && !r->done ? "... " : "tt> ";
}

void repl_command_source(const ReplCmd *c, StrBuf *out) {
    if (c->kind == REPL_CMD_IR)
        sb_printf(out, "let __ir__ = (%s)\n", c->arg);
    else if (c->kind == REPL_CMD_PROFILE)
        sb_printf(out, "profile { print(%s) }\n", c->arg);
}

void repl_free(ReplLines *r) {
    sb_free(&r->entry);
    sb_free(&r->line);
}
