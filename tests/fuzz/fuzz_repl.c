/* fuzz_repl.c - libFuzzer target for the REPL's line handling
 * (runtime/eval/repl.c): any bytes, split into lines, must be gathered into
 * entries, commands and an end-of-input verdict that agree with
 * parse_is_incomplete, and what they hand out must parse (or fail to) with
 * diagnostics, never a crash or a leak. A line holding only the byte 0x03
 * stands for Ctrl-C at the prompt.
 *
 *   scripts/fuzz.sh   (or: build-fuzz/fuzz_repl tests/fuzz/corpus_repl)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ast.h"
#include "repl.h"

static FILE *sink;

/* Parses text as the REPL would run it; the ASTs are dropped. */
static void parse(const char *name, const char *text, size_t len) {
    Arena ar;
    arena_init(&ar);
    int nerrors = 0;
    AstNode *prog = parse_source(&ar, name, text, len, &nerrors);
    TT_ASSERT(prog && prog->kind == AST_PROGRAM);
    arena_free(&ar);
    diag_reset_count();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!sink) sink = fopen("/dev/null", "w");
    diag_set_stream(sink);
    ReplLines r = {0};
    int entries = 0;
    for (size_t i = 0; i <= size;) {
        size_t j = i;
        while (j < size && data[j] != '\n') j++;
        if (j == size && i == size) break; /* no last line after a final '\n' */
        const char *line = (const char *)data + i;
        size_t len = j - i;
        i = j + 1;
        if (len == 1 && line[0] == 3) {
            repl_cancel(&r);
            TT_ASSERT(strcmp(repl_prompt(&r), "tt> ") == 0);
            continue;
        }
        bool fresh = strcmp(repl_prompt(&r), "tt> ") == 0;
        switch (repl_feed(&r, line, len)) {
        case REPL_MORE:
            TT_ASSERT(parse_is_incomplete(r.entry.s, r.entry.len));
            TT_ASSERT(strcmp(repl_prompt(&r), "... ") == 0);
            break;
        case REPL_ENTRY:
            TT_ASSERT(r.entry.len > 0 && r.entry.s[r.entry.len - 1] == '\n');
            TT_ASSERT(!parse_is_incomplete(r.entry.s, r.entry.len));
            TT_ASSERT(r.nentries == ++entries);
            TT_ASSERT(strcmp(repl_prompt(&r), "tt> ") == 0);
            parse(r.name, r.entry.s, r.entry.len);
            break;
        case REPL_BLANK:
            TT_ASSERT(strcmp(repl_prompt(&r), "tt> ") == 0);
            break;
        case REPL_COMMAND: {
            TT_ASSERT(fresh); /* never inside an entry */
            TT_ASSERT(r.cmd.text[0] == ':');
            TT_ASSERT(r.cmd.arg >= r.line.s && r.cmd.arg <= r.line.s + r.line.len);
            if (r.cmd.kind == REPL_CMD_IR || r.cmd.kind == REPL_CMD_PROFILE)
                TT_ASSERT(r.cmd.arg[0] != 0);
            StrBuf src = {0};
            repl_command_source(&r.cmd, &src);
            if (src.len) parse("<:cmd>", src.s, src.len);
            sb_free(&src);
            break;
        }
        }
    }
    if (repl_finish(&r)) {
        TT_ASSERT(r.nentries == entries + 1);
        parse(r.name, r.entry.s, r.entry.len);
    }
    TT_ASSERT(!repl_finish(&r)); /* reported once */
    repl_free(&r);
    diag_shutdown();
    return 0;
}
