#!/usr/bin/env python3
"""run_cache.py - the compiled-code cache's trust model end to end (ttrun).

The probe of issue 8: TT_CACHE_DIR pointing at a shared directory (mode
1777) that holds entries another user planted. ttrun must warn once, load
nothing, write nothing there, and still print the right answer; after
`chmod 700` the directory is used again, and entries it cannot trust
(another owner, when run as root) are replaced.

    run_cache.py --ttrun PATH
"""
import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

PROGRAM = """let x = tensor([[1.0, 2.0], [3.0, 4.0]])
print(sum(exp(x) * 0.0 + x * x + 1.0))
"""
WANT = "34."
LINKED = re.compile(r"(\d+) of them linked from the on-disk cache")


def run(ttrun, script, cache):
    env = dict(os.environ, TT_CACHE_DIR=cache)
    env.pop("TT_CACHE_DEBUG", None)
    p = subprocess.run([ttrun, "--backend=jit", "--profile", script], env=env,
                       capture_output=True, text=True, timeout=120)
    m = LINKED.search(p.stderr)
    return p, int(m.group(1)) if m else None


def listing(d):
    return sorted((n, os.lstat(os.path.join(d, n)).st_mtime_ns) for n in os.listdir(d))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", required=True)
    args = ap.parse_args()
    problems = []

    def check(cond, what):
        if not cond:
            problems.append(what)
        return cond

    with tempfile.TemporaryDirectory(prefix="tt_cache_test_") as top:
        script = os.path.join(top, "prog.tt")
        with open(script, "w") as f:
            f.write(PROGRAM)

        # a private cache: filled, then used
        private = os.path.join(top, "private")
        p, linked = run(args.ttrun, script, private)
        check(p.returncode == 0 and p.stdout.strip() == WANT, "private, cold: %r %r" % (p.stdout, p.stderr))
        check(stat.S_IMODE(os.stat(private).st_mode) == 0o700, "the cache directory is not 0700")
        entries = [n for n in os.listdir(private) if n.endswith(".ttobj")]
        check(entries, "nothing was stored")
        for n in entries:
            check(stat.S_IMODE(os.stat(os.path.join(private, n)).st_mode) == 0o600, n + " is not 0600")
        p, linked = run(args.ttrun, script, private)
        check(linked and linked > 0, "private, warm: nothing linked from the cache: %r" % p.stderr)

        # the same entries planted in a shared directory
        shared = os.path.join(top, "shared")
        os.mkdir(shared)
        for n in entries:
            dst = os.path.join(shared, n)
            shutil.copyfile(os.path.join(private, n), dst)
            os.chmod(dst, 0o644)
            if os.geteuid() == 0:
                os.chown(dst, 65534, 65534)  # another user's
        os.chmod(shared, 0o1777)
        before = listing(shared)
        p, linked = run(args.ttrun, script, shared)
        check(p.returncode == 0 and p.stdout.strip() == WANT, "shared: %r %r" % (p.stdout, p.stderr))
        check(linked == 0, "shared: %s entries linked from a 1777 directory" % linked)
        warnings = [l for l in p.stderr.splitlines() if "warning" in l]
        want = ("tt: warning: ignoring the compiled-code cache %s: it is writable by others "
                "(mode 1777); compiling in memory" % shared)
        check(len(warnings) == 1 and warnings[0].startswith(want),
              "shared: expected one warning starting %r, got %r" % (want, warnings))
        check(listing(shared) == before, "shared: the directory was written to")

        # chmod 700: used again; entries it cannot trust are replaced
        os.chmod(shared, 0o700)
        p, linked = run(args.ttrun, script, shared)
        check(p.returncode == 0 and p.stdout.strip() == WANT and "warning" not in p.stderr,
              "chmod 700: %r %r" % (p.stdout, p.stderr))
        if os.geteuid() == 0:
            check(linked == 0, "chmod 700: another user's entry was linked")
        p, linked = run(args.ttrun, script, shared)
        check(linked and linked > 0, "chmod 700, warm: nothing linked: %r" % p.stderr)
        for n in entries:
            st = os.lstat(os.path.join(shared, n))
            check(st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o600,
                  "%s was not replaced by a private entry" % n)

        # ttrun --cache-info and --cache-clear (issue 10 item 8) on the
        # directory just used: entries counted, then removed, a small cap
        # honoured
        def cache_cmd(flag, **extra):
            env = dict(os.environ, TT_CACHE_DIR=shared, **extra)
            return subprocess.run([args.ttrun, flag], env=env, capture_output=True,
                                  text=True, timeout=60)
        n = len([f for f in os.listdir(shared) if f.endswith(".ttobj")])
        p = cache_cmd("--cache-info", TT_CACHE_MAX="200000")
        m = re.search(r"entries:\s+(\d+)", p.stdout)
        check(p.returncode == 0 and ("cache dir: %s\n" % shared) in p.stdout and m
              and int(m.group(1)) == n and "cap:       200000 " in p.stdout,
              "--cache-info: %r (want %d entries)" % (p.stdout, n))
        p = cache_cmd("--cache-info", TT_CACHE_MAX="5000")
        check(p.returncode == 0 and "cap:       536870912 " in p.stdout
              and "TT_CACHE_MAX=5000" in p.stderr, "--cache-info, a small cap: %r" % p.stderr)
        p = cache_cmd("--cache-clear")
        check(p.returncode == 0 and n >= 1
              and p.stdout == "removed %d cache entr%s\n" % (n, "y" if n == 1 else "ies")
              and not [f for f in os.listdir(shared) if f.endswith(".ttobj")],
              "--cache-clear: %r" % p.stdout)

    for what in problems:
        print("FAIL:", what)
    print("%d problems" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
