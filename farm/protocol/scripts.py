"""Lua scripts run by their SHA1 (EVALSHA): a bucket's two scripts (deliveries._TAKE,
tilestore._STORE_TILE) sent whole with EVAL cost Redis about 30 microseconds each, most of
it hashing the text it was sent again (issue 31: measured with INFO commandstats). A
server that does not know a script (first use, a restart, SCRIPT FLUSH) answers NOSCRIPT;
the script is then loaded and the round trip made again, whole."""

from __future__ import annotations

import hashlib

from redis.exceptions import NoScriptError


class Script:
    def __init__(self, text: str):
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def queue(self, pipe, keys: list[str], *args) -> None:
        """Queue the script on `pipe` (or run it on a client), by its SHA1."""
        return pipe.evalsha(self.sha, len(keys), *keys, *args)

    def run(self, redis, keys: list[str], *args):
        """The script's reply, in one round trip (two more on a server without it)."""
        return in_one_trip(redis, [self], lambda pipe: self.queue(pipe, keys, *args))[0]


def in_one_trip(redis, scripts: list[Script], build) -> list:
    """The replies of the commands `build(pipe)` queues on a pipeline, `scripts` among them
    by their SHA1; where the server lacks one, they are loaded and the whole pipeline run
    again (so its other commands must bear running twice)."""
    for attempt in (1, 2):
        with redis.pipeline(transaction=False) as pipe:
            build(pipe)
            try:
                return pipe.execute()
            except NoScriptError:
                if attempt == 2:
                    raise
        for script in scripts:
            redis.script_load(script.text)
    raise AssertionError("unreachable")
