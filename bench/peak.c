/* peak.c - bench/peak: the host's FMA peak per core at 128, 256 and 512
 * bits (where the CPU has them), with the CPU model. See peak.h.
 *
 * Usage: bench_peak [--quick] */
#include <stdio.h>
#include <string.h>

#include "bench_cpu.h"
#include "peak.h"

int main(int argc, char **argv) {
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 1 && !quick) {
        fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
        return 2;
    }
    bench_print_cpu();
    printf("single-precision FMA peak per core (one thread, register-only independent chains, "
           "best of %d runs):\n",
           quick ? 3 : 7);
    static const int widths[] = {128, 256, 512};
    for (int i = 0; i < 3; i++) {
        if (!peak_supported(widths[i])) {
            printf("  %3d-bit: not supported by this CPU\n", widths[i]);
            continue;
        }
        printf("  %3d-bit: %7.1f GFLOP/s\n", widths[i],
               peak_gflops(widths[i], quick ? 0.05 : 0.2, quick ? 3 : 7));
    }
    return 0;
}
