#!/usr/bin/env python3
"""The REPL's input handling beyond tests/golden/repl.*: Ctrl-C through a
pseudo-terminal (issue 8, item 7), and piped input that ends inside an entry
(item 8).

Ctrl-C: starts `ttrun` (the REPL) on a pty, defines a variable, starts a loop that
would run for hours, sends Ctrl-C and expects `interrupted` and a new
prompt; the variable must still be there. Then Ctrl-C at the prompt must
drop the line being typed, and a Ctrl-C inside an unfinished entry must
drop the whole entry; SIGTERM at the prompt ends it. Every wait is for a piece of expected output (with a
generous timeout only so that a broken build fails instead of hanging).

Piped input that ends in an unfinished entry is an error with status 1,
after the entries before it ran.

    repl_test.py --ttrun PATH [--backend naive|jit]
"""
import argparse
import os
import pty
import select
import signal
import subprocess
import sys
import time

TIMEOUT = 60  # seconds; only reached when something is broken


class Repl:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = "dumb"
            os.environ["HOME"] = "/nonexistent"  # no history file
            os.execv(argv[0], argv)
        self.out = b""

    def send(self, data):
        os.write(self.fd, data)

    def expect(self, what):
        """Reads until `what` (bytes) appears after everything matched so
        far; returns the output up to and including it."""
        end = time.monotonic() + TIMEOUT
        while what not in self.out:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what!r}; got:\n"
                                     + self.out.decode("utf-8", "replace"))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"ttrun exited while waiting for {what!r}; got:\n"
                                         + self.out.decode("utf-8", "replace"))
                self.out += chunk
        i = self.out.index(what) + len(what)
        seen, self.out = self.out[:i], self.out[i:]
        return seen

    def wait(self):
        """The exit status (negative: killed by that signal)."""
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                r, _, _ = select.select([self.fd], [], [], 0.1)
                if r:
                    os.read(self.fd, 4096)
            except OSError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("ttrun did not end")


def piped(ttrun, backend):
    """Each case: the input, the stdout wanted, the stderr wanted in it, the status."""
    cases = [
        (b"let x = 41\nx + 1\nlet y = (x +\n", "42\n",
         "<stdin:3>:1:9: error: unclosed '('", 1),
        (b"print(1)\nlet s = \"abc\n", "1\n", "unterminated string", 1),
        (b"let z = [1,\n 2,\n", "", "error", 1),
        (b"let a = 1 +\n", "", "unexpected end of file", 1),
        # complete input, with and without a final newline, and blank lines
        (b"1 + 1\n\n  \n", "2\n", "", 0),
        (b"let b = (1 +\n 2)\nb", "3\n", "", 0),
    ]
    for inp, want_out, want_err, want_status in cases:
        p = subprocess.run([ttrun, "--backend=" + backend], input=inp, capture_output=True,
                           timeout=TIMEOUT)
        out, err = p.stdout.decode(), p.stderr.decode()
        what = f"piped {inp!r}"
        assert p.returncode == want_status, f"{what}: exit status {p.returncode}; stderr:\n{err}"
        assert out == want_out, f"{what}: stdout {out!r}, expected {want_out!r}"
        assert want_err in err, f"{what}: stderr {err!r} lacks {want_err!r}"
        if not want_err:
            assert err == "", f"{what}: stderr {err!r}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttrun", required=True)
    ap.add_argument("--backend", default="naive")
    a = ap.parse_args()
    try:
        piped(a.ttrun, a.backend)
        r = Repl([a.ttrun, "--backend=" + a.backend])
        r.expect(b"tt> ")
        r.send(b"let kept = 41\r")
        r.expect(b"tt> ")
        # a computation that runs until interrupted
        r.send(b"let i = 0\rwhile true { i = i + 1 }\r")
        r.expect(b"while true { i = i + 1 }")
        time.sleep(0.2)  # not a threshold: lets the loop start; any time works
        r.send(b"\x03")
        got = r.expect(b"interrupted")
        assert b"error" in got, got
        r.expect(b"tt> ")
        # the session survived: the variable and the loop's progress
        r.send(b"kept + 1\r")
        r.expect(b"42")
        r.expect(b"tt> ")
        r.send(b"i > 0\r")
        r.expect(b"true")
        r.expect(b"tt> ")
        # Ctrl-C at the prompt drops the line being typed
        r.send(b"kept = 1000")
        r.expect(b"kept = 1000")
        r.send(b"\x03")
        r.expect(b"tt> ")
        r.send(b"kept\r")
        got = r.expect(b"tt> ")
        assert b"41" in got and b"1000" not in got.split(b"kept", 1)[-1], got
        # ... and inside an unfinished entry, the whole entry
        r.send(b"kept = (1 +\r")
        r.expect(b"... ")
        r.send(b"\x03")
        r.expect(b"tt> ")
        r.send(b"kept\r")
        got = r.expect(b"tt> ")
        assert b"41" in got, got
        r.send(b":quit\r")
        status = r.wait()
        assert status == 0, f"exit status {status}"
        # SIGTERM at the prompt ends the session (after libedit restored the
        # terminal): death by SIGTERM
        r = Repl([a.ttrun, "--backend=" + a.backend])
        r.expect(b"tt> ")
        r.send(b"1 +")
        r.expect(b"1 +")
        os.kill(r.pid, signal.SIGTERM)
        status = r.wait()
        assert status == -signal.SIGTERM, f"SIGTERM at the prompt: exit status {status}"
    except AssertionError as e:
        print(f"FAIL: {e}")
        return 1
    print("PASS repl_test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
