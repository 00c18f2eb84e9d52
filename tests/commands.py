"""Running farm's commands as a user does: `python -m farm.client.cli ...` in a subprocess,
with the test's environment on top of this one's."""

from __future__ import annotations

import os
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


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """The first true value of `condition()` within `timeout` seconds (an exception counts as
    false: Redis may be restarting), else AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
