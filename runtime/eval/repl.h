/* repl.h - the REPL's line handling, apart from any terminal: lines are
 * gathered into entries (an unclosed (, [, { or string, or a trailing
 * operator, continues an entry on the next line), a line starting with ':'
 * outside an entry is a command, and what is left at the end of the input
 * is reported. tools/ttrun.c reads the lines and runs what comes out;
 * tests/fuzz/fuzz_repl.c feeds it arbitrary bytes.
 */
#ifndef TT_REPL_H
#define TT_REPL_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

typedef enum ReplCmdKind {
    REPL_CMD_QUIT,    /* :quit, :q */
    REPL_CMD_HELP,    /* :help */
    REPL_CMD_BACKEND, /* :backend [naive|jit] (no argument: print it) */
    REPL_CMD_IR,      /* :ir EXPR */
    REPL_CMD_PROFILE, /* :profile EXPR */
    REPL_CMD_UNKNOWN, /* anything else, or a command missing its argument */
} ReplCmdKind;

typedef struct ReplCmd {
    ReplCmdKind kind;
    const char *text; /* the whole command, leading blanks skipped (messages) */
    const char *arg;  /* the argument, blanks trimmed ("" when none); NUL
                         terminated, pointing into ReplLines.line */
} ReplCmd;

typedef enum ReplStep {
    REPL_MORE,    /* the entry goes on: read another line ("... " prompt) */
    REPL_ENTRY,   /* ReplLines.entry is a complete entry to run */
    REPL_BLANK,   /* an empty or blank entry: nothing to run */
    REPL_COMMAND, /* the line was a command: ReplLines.cmd */
} ReplStep;

typedef struct ReplLines {
    StrBuf entry;  /* the entry's lines, each ending in '\n' */
    StrBuf line;   /* a copy of the last command line (ReplCmd points here) */
    int nentries;  /* entries completed so far */
    char name[32]; /* the source name of the last entry: "<stdin:N>" */
    ReplCmd cmd;
    bool done; /* the entry was handed out: the next line starts a new one */
} ReplLines;

/* Takes one line (without its newline; it may hold NUL bytes). */
ReplStep repl_feed(ReplLines *r, const char *line, size_t len);
/* Ctrl-C: drops the unfinished entry. */
void repl_cancel(ReplLines *r);
/* At the end of the input: true when an unfinished, non-blank entry is
 * left in r->entry (named r->name); running it reports what it lacks. */
bool repl_finish(ReplLines *r);
/* "tt> " for a new entry, "... " inside one. */
const char *repl_prompt(const ReplLines *r);
/* The source text a command runs (empty for commands that run none):
 *   :ir EXPR       let __ir__ = (EXPR)
 *   :profile EXPR  profile { print(EXPR) } */
void repl_command_source(const ReplCmd *c, StrBuf *out);
void repl_free(ReplLines *r);

#endif
