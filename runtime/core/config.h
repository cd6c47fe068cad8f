/* config.h - the interpreter's configuration: what ttrun's flags, ttc's
 * options and the environment choose before a script runs.
 *
 * Tools read it with rt_config and change it with rt_configure (a copy in,
 * so a tool never writes into the interpreter); the runtime's own files read
 * I->cfg. A leaf header: it depends on nothing else in runtime/.
 */
#ifndef TT_CONFIG_H
#define TT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct Interp Interp;

typedef struct RtConfig {
    bool quiet;
    uint64_t seed;          /* --seed, default 0: the global generator's seed */
    int opt_level;          /* -O0..-O3 for the JIT (default 2) */
    int threads;            /* the JIT's threads (--threads=N); 0: all online cores */
    bool capture;           /* captured calls: on unless TT_CAPTURE=0 or ttrun --no-capture */
    bool dump_fuse;         /* --dump=fuse: the kernels (fusion groups) of each JIT compile */
    bool dump_loops;        /* --dump=loops: the loop IR of each JIT compile */
    bool dump_graph;        /* --dump=graph: ir_print each execution graph before it runs */
    bool dump_kvcache;      /* --dump=kvcache: the decode graph generate() derives (kvdecode.c) */
    bool dump_quant;        /* --dump=quant: ir_print each graph the quantization pass writes */
    const char *stdlib_dir; /* lang/std: found next to the binary, else the build's */
} RtConfig;

/* The configuration in force (rt_new_interp's defaults until rt_configure). */
const RtConfig *rt_config(const Interp *I);
/* Replaces the configuration by *c and reseeds the global generator with
 * c->seed (interp.c): call it before running code, as ttrun does. */
void rt_configure(Interp *I, const RtConfig *c);

#endif
