/* exec.h - the backends an interpreter runs its execution graphs on
 * (exec.c; the interface is backend/backend.h). A leaf header.
 */
#ifndef TT_EXEC_H
#define TT_EXEC_H

#include "backend.h"

typedef struct RtBackends {
    int cur;                                /* the one graphs run on: its index in the registry */
    struct TtBackend *slot[TT_BACKEND_MAX]; /* each opened on first use (exec.c);
                                               runs and seconds: tt_backend_stats */
} RtBackends;

#endif
