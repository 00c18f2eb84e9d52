"""Running farm's commands as a user does: `python -m farm.client.cli ...` in a subprocess,
with the test's environment on top of this one's (or, for a refusal that needs no process
of its own, `run_here`); and waiting on a condition with a deadline."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "farm.client.cli"]


def run(*args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `farm ARGS...` to its end; the result carries `seconds`, the wall time it took."""
    started = time.monotonic()
    result = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    result.seconds = time.monotonic() - started
    return result


def start(*args, env: dict | None = None) -> subprocess.Popen:
    """Start `farm ARGS...` with its stdout and stderr piped; `finish` collects it."""
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def read_until(stream, done, timeout: float, what: str) -> str:
    """What a started command wrote to `stream` (its stdout or stderr pipe) until
    `done(text so far)` holds, within `timeout` seconds; the rest stays for `finish`."""
    chunks = []

    def read():
        while select.select([stream], [], [], 0)[0]:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:  # the command closed it
                break
            chunks.append(chunk.decode(errors="replace"))
        return done("".join(chunks))

    wait_for(read, timeout, what)
    return "".join(chunks)


def run_here(*args) -> int:
    """`farm ARGS...` in this process (its output goes to this process's stdout and stderr,
    for capfd); the exit status. The command's own SIGTERM handler is put back after it."""
    from farm.client.cli import main

    before = signal.getsignal(signal.SIGTERM)
    try:
        return main([str(arg) for arg in args])
    finally:
        signal.signal(signal.SIGTERM, before)


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """The first true value of `condition()` within `timeout` seconds (an exception counts as
    false: Redis may be restarting), else AssertionError naming `what` (and, as its cause,
    the last exception `condition()` raised, if its last call raised one)."""
    deadline, error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value, error = condition(), None
        except Exception as exc:
            value, error = None, exc
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}") from error
