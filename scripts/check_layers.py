#!/usr/bin/env python3
"""check_layers.py - runtime/'s include rule (spec/runtime.md, "Source layout").

A file in runtime/LAYER/ includes runtime headers of its own layer or of the
layers below it: core <- io <- graph <- eval <- lib. The few upward includes
the code has are listed in ALLOWED with their reason; any other fails (exit 1).
Usage: scripts/check_layers.py [ROOT]
"""
import os, re, sys

LAYERS = ["core", "io", "graph", "eval", "lib"]
# (file, header): upward includes that are part of the design, each with why
ALLOWED = {
    # the leaf state headers of struct Interp's parts (each depends on nothing
    # in runtime/): value.h aggregates them
    ("core/value.h", "capture_state.h"),
    ("core/value.h", "exec.h"),
    ("core/value.h", "lazy.h"),
    ("core/value.h", "profile.h"),
    # an object's release and printing reach every kind of object: a fn's
    # closure scope, a model's fields (env_release, rt_model_field)
    ("core/value.c", "eval.h"),
    # captured calls replay a fn call (call_func) and keep its scopes
    ("graph/capture.c", "eval.h"),
}

def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    rt = os.path.join(root, "runtime")
    where = {}
    for d in LAYERS:
        for f in os.listdir(os.path.join(rt, d)):
            if f.endswith(".h"):
                where[f] = d
    bad = []
    for d in LAYERS:
        for f in sorted(os.listdir(os.path.join(rt, d))):
            if not f.endswith((".c", ".h")):
                continue
            with open(os.path.join(rt, d, f)) as fh:
                for n, line in enumerate(fh, 1):
                    m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                    if not m or m.group(1) not in where:
                        continue
                    h = m.group(1)
                    if LAYERS.index(where[h]) > LAYERS.index(d) and (d + "/" + f, h) not in ALLOWED:
                        bad.append("runtime/%s/%s:%d: includes %s (%s/), above %s/" % (d, f, n, h, where[h], d))
    for b in bad:
        print(b)
    if bad:
        print("check_layers: %d include(s) against the layering (spec/runtime.md)" % len(bad))
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
