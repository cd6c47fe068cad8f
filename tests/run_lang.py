#!/usr/bin/env python3
"""run_lang.py - runs the language tests tests/lang/*.tt.

Each test is a .tt file carrying its expectations in comments:

    # expect: TEXT                 the next line of stdout is exactly TEXT
    # expect~: REGEX               the next line of stdout matches REGEX (whole line)
    # expect error LINE:COL: SUB   stderr has "<path>:LINE:COL: error:" ... SUB
    # expect warning LINE:COL: SUB same for a warning
    # expect stderr: SUB           SUB occurs anywhere in stderr
    # env: NAME=VALUE              runs ttrun with NAME set (TT_STACK_LIMIT=64K)

Without `# expect:` lines stdout is not checked; with them, stdout must be
exactly those lines. With an expected error the exit status must be 1,
otherwise 0 and stderr must not contain "error:".

usage: python3 tests/run_lang.py --ttrun PATH [--only SUBSTR] [--backend NAME] DIR
(run from the source root: paths in diagnostics are relative to it)
"""
import argparse
import os
import re
import subprocess
import sys

EXPECT_OUT = re.compile(r"#\s*expect(~?):\s?(.*)$")
EXPECT_DIAG = re.compile(r"#\s*expect (error|warning) (\d+):(\d+):\s*(.*?)\s*$")
EXPECT_STDERR = re.compile(r"#\s*expect stderr:\s*(.*?)\s*$")
ENV = re.compile(r"^#\s*env:\s*([A-Za-z_][A-Za-z0-9_]*)=(.*?)\s*$")


def parse_expectations(text):
    out, diags, stderr_subs = [], [], []
    for line in text.splitlines():
        m = EXPECT_OUT.search(line)
        if m:
            text = m.group(2).rstrip("\r")
            out.append(re.compile(text) if m.group(1) else text)
            continue
        m = EXPECT_DIAG.search(line)
        if m:
            diags.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
            continue
        m = EXPECT_STDERR.search(line)
        if m:
            stderr_subs.append(m.group(1))
    return out, diags, stderr_subs


def show(lines, limit=20):
    s = "\n".join("      | " + l for l in lines[:limit])
    if len(lines) > limit:
        s += "\n      | ... (%d more lines)" % (len(lines) - limit)
    return s


def parse_env(text):
    env = dict(os.environ)
    for line in text.splitlines():
        m = ENV.match(line)
        if m:
            env[m.group(1)] = m.group(2)
    return env


def run_one(ttrun, backend, path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    want_out, diags, stderr_subs = parse_expectations(text)
    cmd = [ttrun, "--backend=" + backend, path]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=120, env=parse_env(text))
    except subprocess.TimeoutExpired:
        return ["timed out after 120 s"]
    stdout = p.stdout.decode("utf-8", "replace")
    stderr = p.stderr.decode("utf-8", "replace")
    out_lines = stdout.splitlines()
    err_lines = stderr.splitlines()
    problems = []
    if p.returncode < 0 or p.returncode > 1:
        problems.append("crashed or bad exit status %d" % p.returncode)
    def same(w, g):
        return w.fullmatch(g) is not None if isinstance(w, re.Pattern) else w == g

    if want_out and (len(out_lines) != len(want_out) or
                     not all(same(w, g) for w, g in zip(want_out, out_lines))):
        problems.append("stdout differs:\n    expected:\n%s\n    got:\n%s" %
                        (show([getattr(w, "pattern", w) for w in want_out]), show(out_lines)))
        # the first differing line, for a quick look
        for i in range(max(len(want_out), len(out_lines))):
            w = want_out[i] if i < len(want_out) else "<no line>"
            g = out_lines[i] if i < len(out_lines) else "<no line>"
            if not same(w, g):
                problems.append("first difference at stdout line %d: expected %r, got %r" %
                                (i + 1, getattr(w, "pattern", w), g))
                break
    for kind, line, col, sub in diags:
        prefix = "%s:%d:%d: %s:" % (path, line, col, kind)
        if not any(l.startswith(prefix) and sub in l for l in err_lines):
            problems.append("missing %s %d:%d containing %r" % (kind, line, col, sub))
    for sub in stderr_subs:
        if sub not in stderr:
            problems.append("stderr lacks %r" % sub)
    expects_error = any(k == "error" for k, _, _, _ in diags)
    if expects_error:
        if p.returncode != 1:
            problems.append("expected exit status 1, got %d" % p.returncode)
    else:
        if p.returncode != 0 and not (stderr_subs and p.returncode == 1):
            problems.append("expected exit status 0, got %d" % p.returncode)
        if "error:" in stderr and not stderr_subs:
            problems.append("unexpected error on stderr")
    if problems and stderr.strip():
        problems.append("stderr:\n%s" % show(err_lines))
    return problems


def main():
    ap = argparse.ArgumentParser(description="run tt language tests")
    ap.add_argument("--ttrun", required=True, help="path to the ttrun binary")
    ap.add_argument("--only", default=None, help="run only tests whose path contains SUBSTR")
    ap.add_argument("--backend", default="naive", help="backend to pass to ttrun")
    ap.add_argument("dir", nargs="?", default="tests/lang")
    args = ap.parse_args()
    if not os.path.exists(args.ttrun):
        print("run_lang.py: no ttrun at %s" % args.ttrun, file=sys.stderr)
        return 2
    files = sorted(os.path.join(args.dir, f) for f in os.listdir(args.dir) if f.endswith(".tt"))
    if args.only:
        files = [f for f in files if args.only in f]
    passed = failed = 0
    for f in files:
        problems = run_one(args.ttrun, args.backend, f)
        if problems:
            failed += 1
            print("FAIL %s" % f)
            for pr in problems:
                print("    " + pr)
        else:
            passed += 1
            print("PASS %s" % f)
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
