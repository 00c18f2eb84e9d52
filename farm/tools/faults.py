"""Deliberate faults, for the fault tests and the chaos run; never set on a real farm.

`FARM_FAULTS` holds comma-separated faults a worker injects into itself:

- `slow=F`: take F times as long per bucket (sleeps after each pass of samples);
  `slow=F@B` only on bucket B
- `crash=B`: the render process kills itself (SIGKILL) when it starts bucket B
- `fail=B`: raise an error when rendering bucket B
- `fail=all`: raise an error on every bucket (a broken worker)
- `failsize=WxH`: raise an error on every bucket of the jobs whose frame is W x H pixels
  (a worker broken for one scene only: the job's blocklist)
- `stall=S@B`: the render process sleeps S seconds as it starts bucket B, its lease kept
  alive meanwhile (a bucket slow by the clock, whatever the kernel's speed)

B may be several buckets joined by `+` (`crash=3+7`).

The module is a worker plugin (farm/worker/plugins.py): a worker loads it only where
FARM_FAULTS is set.
"""

from __future__ import annotations

import os
import signal
import time

from farm import defaults
from farm.exceptions import InjectedFault


def _parse(text: str) -> dict[str, str]:
    faults = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in ("slow", "crash", "fail", "failsize", "stall"):
            raise ValueError(f"FARM_FAULTS: unknown fault {name!r}")
        faults[name] = value
    return faults


FAULTS = _parse(os.environ.get("FARM_FAULTS", ""))
describe = f"deliberate faults ({os.environ.get('FARM_FAULTS', '')})"


def _hits(name: str, bucket_index: int) -> bool:
    value = FAULTS.get(name)
    if value is None:
        return False
    return value == "all" or str(bucket_index) in value.split("+")


def before_bucket(bucket_index: int, meta=None) -> None:
    """Called as a bucket starts rendering (`meta`: its job's JobMeta)."""
    if _hits("crash", bucket_index):
        os.kill(os.getpid(), signal.SIGKILL)
    if _hits("fail", bucket_index):
        raise InjectedFault(f"injected failure on bucket {bucket_index} (FARM_FAULTS)")
    if meta is not None and FAULTS.get("failsize") == f"{meta.width}x{meta.height}":
        raise InjectedFault(f"injected failure on bucket {bucket_index} of a {FAULTS['failsize']} job (FARM_FAULTS)")
    seconds, _, buckets = FAULTS.get("stall", "0").partition("@")
    if float(seconds) > 0 and str(bucket_index) in buckets.split("+"):
        time.sleep(float(seconds))


def after_pass(bucket_index: int, pass_seconds: float) -> None:
    """Called after each pass of samples: a slow worker sleeps here, for the pass's time
    at most 4 x PASS_SECONDS: a pass that spanned a SIGSTOP or a Redis outage (the check
    between passes waits for Redis) is not a slow kernel, and slowing it 15 times made a
    render process sleep for minutes (test_a_stalled_redis_loses_no_worker's 10 s
    teardown, a 51 s test_redis_killed_and_restarted_mid_frame)."""
    factor, _, buckets = FAULTS.get("slow", "1").partition("@")
    if float(factor) > 1.0 and (not buckets or str(bucket_index) in buckets.split("+")):
        time.sleep(min(pass_seconds, 4 * defaults.PASS_SECONDS) * (float(factor) - 1.0))
