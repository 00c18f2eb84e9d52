"""The client's loop as a library: several renders turned by one JobLoop in one process,
no terminal, no argparse; each frame exact, each listener told its own render's story."""

from __future__ import annotations

import numpy as np

from farm.client.film import read_exr
from farm.client.loop import JobLoop
from farm.client.render import FrameRender, Listener, RenderOptions
from farm.scene import parse_scene
from tests import frames


class Recorder(Listener):
    """What a render told, in order."""

    def __init__(self):
        self.lines, self.buckets, self.outputs = [], 0, []

    def status(self, line):
        self.lines.append(line)

    def bucket(self, record):
        self.buckets += 1

    def written(self, run, output):
        self.outputs.append((run.job.job_id, output))


def test_one_loop_renders_a_plain_frame_and_a_progressive_one_at_once(farm, make_document, tmp_path, device):
    plain_document = make_document(width=40, height=24, spp=4)
    rounds_document = make_document(width=32, height=16, spp=4, max_depth=3)
    plain_listener, rounds_listener = Recorder(), Recorder()
    plain = FrameRender(farm.redis, farm.app, parse_scene(plain_document), plain_document, None,
                        RenderOptions(bucket_size=16), tmp_path / "plain.exr", plain_listener)
    progressive = FrameRender(farm.redis, farm.app, parse_scene(rounds_document), rounds_document, None,
                              RenderOptions(bucket_size=8, progressive=True), tmp_path / "rounds.exr", rounds_listener)
    loop = JobLoop(farm.redis)
    loop.start(plain)
    loop.start(progressive)
    both_running = len(loop.runs) == 2  # each render's first job sent, both collected by this loop
    while len(loop.renders) < 2:
        loop.step()
    assert both_running, "the two renders' jobs were collected side by side"
    assert not loop.runs
    assert [error for _, error in loop.renders.values()] == [None, None]
    assert np.array_equal(read_exr(tmp_path / "plain.exr"), frames.reference(device, plain_document))
    assert np.array_equal(read_exr(tmp_path / "rounds.exr"), frames.reference(device, rounds_document))
    assert plain_listener.buckets == 6 and len(plain_listener.outputs) == 1
    assert rounds_listener.lines == ["round 1/3: samples 0 to 1 of 4", "round 2/3: samples 1 to 2 of 4",
                                     "round 3/3: samples 2 to 4 of 4"]
    assert len(rounds_listener.outputs) == 3 and rounds_listener.buckets == 3 * 8  # each round's 8 buckets
    assert {job for job, _ in plain_listener.outputs}.isdisjoint(job for job, _ in rounds_listener.outputs)


def test_a_signal_that_comes_while_a_flow_runs_goes_on_up():
    """A SIGTERM (Terminated) raised in a render's flow while it runs ends that render and
    leaves the loop's caller too; the one the loop throws in (Ctrl-C passed to every render)
    stays the render's outcome only."""
    import pytest

    from farm.exceptions import Terminated

    def flow(raise_here):
        if raise_here:
            raise Terminated()
        yield "a run"

    loop = JobLoop(None)
    with pytest.raises(Terminated):
        loop.start("signalled", flow(True))
    assert isinstance(loop.renders["signalled"][1], Terminated)
    loop.add = lambda run: None
    loop._flows.clear()
    thrown = Terminated()
    running = flow(False)
    loop.start("interrupted", running)
    loop._advance("interrupted", running, thrown)  # thrown in: its outcome, not raised here
    assert loop.renders["interrupted"] == (None, thrown)
