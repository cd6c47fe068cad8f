#!/usr/bin/env python3
"""SIGINT and SIGTERM against a running script (issue 8, items 2 and 7).

- SIGINT in a loop: status 130, `interrupted` on stderr, and what the script
  printed before is in its (redirected, fully buffered) stdout file.
- SIGINT and SIGTERM while the script saves a 64 MB tensor over and over:
  status 130 (SIGINT) or death by SIGTERM, the earlier print flushed, and no
  temporary file left in the directory, wherever the signal landed (in a
  save or between two).

The scripts announce that they are running by creating a file; the test
waits for it (no timing thresholds).

    sigint_script.py --ttrun PATH
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

TIMEOUT = 60  # seconds; only reached when something is broken

LOOP = """\
print("before")
save_npy(tensor([1.0]), "started.npy")
let i = 0
while true { i = i + 1 }
"""

SAVES = """\
print("before")
let t = zeros([16, 1024, 1024]) + 1.0
save_npy(t, "started.npy")
while true { save_npy(t, "big.npy") }
"""


def run_until(ttrun, script, sig, tmp, delay=0.0):
    path = os.path.join(tmp, "s.tt")
    with open(path, "w") as f:
        f.write(script)
    with open(os.path.join(tmp, "out.txt"), "w") as out, \
         open(os.path.join(tmp, "err.txt"), "w") as err:
        p = subprocess.Popen([ttrun, "--backend=naive", "s.tt"], cwd=tmp, stdout=out, stderr=err)
        end = time.monotonic() + TIMEOUT
        while not os.path.exists(os.path.join(tmp, "started.npy")):
            if p.poll() is not None or time.monotonic() > end:
                p.kill()
                raise AssertionError("the script did not start: "
                                     + open(os.path.join(tmp, "err.txt")).read())
            time.sleep(0.01)
        time.sleep(delay)  # where the signal lands varies; every place must be clean
        p.send_signal(sig)
        try:
            status = p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError(f"signal {sig} did not stop the script")
    out = open(os.path.join(tmp, "out.txt")).read()
    err = open(os.path.join(tmp, "err.txt")).read()
    return status, out, err


def check(name, ok, msg):
    if not ok:
        raise AssertionError(f"{name}: {msg}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", required=True)
    a = ap.parse_args()
    ttrun = os.path.abspath(a.ttrun)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            status, out, err = run_until(ttrun, LOOP, signal.SIGINT, tmp)
            check("loop", status == 130, f"exit status {status}, expected 130; stderr:\n{err}")
            check("loop", out == "before\n", f"stdout {out!r}: the print was not flushed")
            check("loop", "error: interrupted" in err, f"stderr {err!r}")
        for sig, want in ((signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)):
            for delay in (0.0, 0.05, 0.2):
                with tempfile.TemporaryDirectory() as tmp:
                    status, out, err = run_until(ttrun, SAVES, sig, tmp, delay)
                    name = f"saves, {signal.Signals(sig).name} after {delay}s"
                    check(name, status == want, f"exit status {status}, expected {want}; "
                          f"stderr:\n{err}")
                    check(name, out == "before\n", f"stdout {out!r}: the print was not flushed")
                    left = sorted(f for f in os.listdir(tmp) if ".tmp" in f)
                    check(name, not left, f"temporary files left behind: {left}")
    except AssertionError as e:
        print(f"FAIL {e}")
        return 1
    print("PASS sigint_script")
    return 0


if __name__ == "__main__":
    sys.exit(main())
