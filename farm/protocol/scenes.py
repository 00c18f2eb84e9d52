"""The stored inputs of a job: its scene document, `farm:scene:<digest>` (shared by every
job of the same scene), and the sample plan of a round's job, `farm:job:<id>:plan`."""

from __future__ import annotations

import json

from farm import defaults
from farm.exceptions import JobDataError, JobError, SceneError
from farm.protocol.assets import size_text
from farm.protocol.plans import Plan
from farm.protocol.record import JobPart


class SceneStore:
    """The strings `farm:scene:<digest>`: a scene document, stored once per digest."""

    def __init__(self, redis):
        self.redis = redis

    @staticmethod
    def key_for(digest: str) -> str:
        return f"{defaults.KEY_PREFIX}:scene:{digest}"

    @staticmethod
    def encode(document: dict) -> str:
        """The document as stored, checked against MAX_SCENE_BYTES."""
        text = json.dumps(document, separators=(",", ":"))
        if len(text) > defaults.MAX_SCENE_BYTES:
            raise SceneError(f"the scene document is {size_text(len(text))}, over the limit of "
                             f"{size_text(defaults.MAX_SCENE_BYTES)} (FARM_MAX_SCENE_BYTES); put meshes in files")
        return text

    def put(self, pipe, digest: str, text: str) -> None:
        """Queue on `pipe` the document's store (once per digest) and its expiry: a reused
        scene lives as long as its newest job."""
        key = self.key_for(digest)
        pipe.set(key, text, nx=True, ex=defaults.JOB_TTL)
        pipe.expire(key, defaults.JOB_TTL)

    def get(self, digest: str) -> dict:
        """The scene document, read only if it is within MAX_SCENE_BYTES."""
        key, short = self.key_for(digest), digest[:12]
        size = self.redis.strlen(key)
        if size > defaults.MAX_SCENE_BYTES:
            raise JobDataError(f"scene {short} in Redis is {size_text(size)}, over the limit of "
                               f"{size_text(defaults.MAX_SCENE_BYTES)} (FARM_MAX_SCENE_BYTES)")
        text = self.redis.get(key)
        if text is None:
            raise JobDataError(f"scene {short} is missing from Redis")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise JobDataError(f"scene {short} in Redis is not JSON: {exc}") from None
        except RecursionError:  # a JSON bomb: nesting only, every worker would meet it
            raise JobDataError(f"scene {short} in Redis is nested too deeply to read") from None


class PlanStore(JobPart):
    """The string `farm:job:<id>:plan`: the samples a round's job gives each cell."""

    PART = "plan"

    def put(self, pipe, plan: Plan) -> None:
        pipe.set(self.key, plan.to_bytes(), ex=defaults.JOB_TTL)

    def get(self, width: int, height: int) -> Plan:
        """The stored plan, checked; JobDataError if it is missing or malformed (every worker
        would find the same)."""
        data = self.redis.get(self.key)
        if data is None:
            raise JobDataError(f"job {self.job_id[:12]} has no sample plan in Redis")
        try:
            return Plan.from_bytes(data, width, height)
        except JobError as exc:
            raise JobDataError(str(exc)) from None
