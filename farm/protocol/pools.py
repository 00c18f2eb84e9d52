"""Pools: workers declare tags (FARM_TAGS, and the kind of their device, `cpu` or `gpu`, is a
tag by itself); a job requires tags (`submit --require gpu,lookdev`). A job that requires
none travels on the queue `farm` (FARM_QUEUE), which every worker empties; one that
requires tags travels on the queue of that set, `farm.gpu+lookdev`, which only the workers
holding every one of them empty: a worker consumes the queue of each non-empty set of its
tags (at most MAX_TAGS tags, so at most 15 queues besides `farm`). Each queue is Celery's
and kombu's as any (ten Redis lists, one per priority step), so KEDA scales a pool on its
own queue's lists. Cf. Flamenco's worker tags, OpenCue's allocations, Deadline's pools."""

from __future__ import annotations

import re
from itertools import combinations

from farm import defaults
from farm.exceptions import FarmError

MAX_TAGS = 4  # tags a worker declares, its device kind's included; and a job requires
TAG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def parse_tags(text: str, what: str = "FARM_TAGS") -> tuple[str, ...]:
    """Comma-separated tags, checked: lower-case letters, digits, - and _; sorted, unique."""
    tags = sorted({tag.strip().lower() for tag in (text or "").split(",") if tag.strip()})
    bad = [tag for tag in tags if not TAG.fullmatch(tag)]
    if bad:
        raise FarmError(f"{what}: {bad[0]!r} is not a tag (lower-case letters, digits, - and _, at most 32)")
    if len(tags) > MAX_TAGS:
        raise FarmError(f"{what}: {len(tags)} tags, at most {MAX_TAGS}")
    return tuple(tags)


def pool_queue(required: tuple[str, ...]) -> str:
    """The queue of a job that requires `required`."""
    return f"{defaults.QUEUE}.{'+'.join(sorted(required))}" if required else defaults.QUEUE


def worker_queues(tags: tuple[str, ...]) -> list[str]:
    """Every queue a worker of `tags` empties: `farm`, then each set of its tags'."""
    tags = tuple(sorted(set(tags)))
    return [defaults.QUEUE] + [pool_queue(chosen) for size in range(1, len(tags) + 1)
                               for chosen in combinations(tags, size)]


def lacks(required: tuple[str, ...], about: dict | None) -> str:
    """Why a worker (what it said of itself: registry.about) may not render a job that
    requires `required`, or ""."""
    if not required:
        return ""
    if about is None:
        return f"it has not said its tags yet; the job requires {', '.join(required)}"
    tags = set(filter(None, about.get("tags", "").split(",")))
    missing = [tag for tag in required if tag not in tags]
    return f"it lacks the tag{'s' if len(missing) > 1 else ''} {', '.join(missing)}" if missing else ""
