/* fuzz_parse.c - libFuzzer target for the lexer, the newline filter and the
 * parser: any bytes must give diagnostics, never a crash or a leak.
 *
 *   clang-19 -fsanitize=fuzzer,address,undefined ... && ./fuzz_parse tests/fuzz/corpus_parse
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ast.h"

static FILE *sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!sink) sink = fopen("/dev/null", "w");
    diag_set_stream(sink);
    Arena ar;
    arena_init(&ar);
    int nerrors = 0;
    AstNode *prog = parse_source(&ar, "fuzz.tt", (const char *)data, size, &nerrors);
    TT_ASSERT(prog && prog->kind == AST_PROGRAM);
    TT_ASSERT(nerrors >= 0 && nerrors <= 20);
    if (nerrors == 0 && sink) ast_print(sink, prog);
    (void)parse_is_incomplete((const char *)data, size);
    arena_free(&ar);
    diag_reset_count();
    diag_shutdown();
    return 0;
}
