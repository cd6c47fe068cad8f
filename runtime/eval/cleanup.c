/* cleanup.c - the cleanup stack: what the evaluator's C frames hold while
 * they call code that can fail, released where an error lands (value.h). */
#include "eval.h"

#include <stdlib.h>

void rt_own_push(Interp *I, Owned o) {
    TT_VEC_PUSH(I->ev.owned, I->ev.nowned, I->ev.capowned, o);
}

void rt_owned_unwind(Interp *I, int mark) {
    TT_ASSERT(mark >= 0 && mark <= I->ev.nowned);
    /* newest first, and popped before it is released: a release that runs
     * code (a native's free) sees a consistent stack */
    while (I->ev.nowned > mark) {
        Owned o = I->ev.owned[--I->ev.nowned];
        switch (o.kind) {
        case OWN_VALUE:
            rt_release(I, o.v);
            break;
        case OWN_MEM:
            free(o.p);
            break;
        case OWN_ENV:
            env_release(I, o.env);
            break;
        case OWN_RESTORE:
            o.restore(I, o.p);
            break;
        }
    }
}

void rt_owned_free(Interp *I) {
    for (int i = 0; i < I->ev.nowned; i++)
        if (I->ev.owned[i].kind == OWN_MEM) free(I->ev.owned[i].p);
    free(I->ev.owned);
    I->ev.owned = NULL;
    I->ev.nowned = I->ev.capowned = 0;
}
