/* bench_cpu.h - every benchmark names the CPU its figures were measured on
 * (the project's machines change from session to session). */
#ifndef TT_BENCH_CPU_H
#define TT_BENCH_CPU_H

#include <stdio.h>
#include <string.h>

/* Prints "CPU: <model name>" from /proc/cpuinfo (nothing where it has none). */
static inline void bench_print_cpu(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            printf("CPU: %s", strchr(line, ':') ? strchr(line, ':') + 2 : line);
            break;
        }
    if (f) fclose(f);
}

#endif
