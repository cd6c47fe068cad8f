/* tunehost.c - what the tuners share (tunehost.h). */
#include "tunehost.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool tt_tune_busy(double *load) {
    double la[1];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *fake = getenv("TT_TUNE_LOADAVG");
    if (fake && *fake)
        la[0] = atof(fake);
    else if (getloadavg(la, 1) != 1)
        return false;
    *load = la[0];
    return cores >= 1 && la[0] > 0.75 * (double)cores;
}

void tt_tune_host(char *cpu, size_t cap, uint64_t *features, bool *avx512) {
    char *name = LLVMGetHostCPUName(), *f = LLVMGetHostCPUFeatures();
    snprintf(cpu, cap, "%s", name ? name : "?");
    *avx512 = f && strstr(f, "+avx512f");
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the feature string */
    for (const char *p = f ? f : ""; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    *features = h;
    LLVMDisposeMessage(name);
    LLVMDisposeMessage(f);
}

char *tt_tune_key(const char *kind, const char *cpu, uint64_t features, const char *rest) {
    const char *fmt = "%s cpu=%s features=%016llx %s";
    unsigned long long f = features;
    int len = snprintf(NULL, 0, fmt, kind, cpu, f, rest);
    char *key = len < 0 ? NULL : malloc((size_t)len + 1);
    if (key) snprintf(key, (size_t)len + 1, fmt, kind, cpu, f, rest);
    return key;
}

double tt_thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
