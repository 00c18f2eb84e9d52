"""A shot's frames as `submit --frames` names them, and the file each is written to.

The syntax users know from Blender's and Deadline's frame lists: `1-100`, `1-100x5` (every
fifth), `1,5,10-20`, a single `7`. Frame f shows the scene's animation at f / fps seconds
(frame 0 at its time 0, as glTF's animations and Blender's timeline at frame 0). Output
patterns: `shot.####.exr` (the last run of `#` is the frame number, zero-padded to its
length) or `shot.{frame:04d}.exr`; a shot of several frames without either gets `.####`
before the extension.
"""

from __future__ import annotations

import math
import re
import string
from pathlib import Path

from farm.exceptions import FarmError

# Most frames one shot may have: a day of film at 24 fps is 2 million; an hour, 86,400.
MAX_FRAMES = 100_000
_ITEM = re.compile(r"(\d+)(?:-(\d+)(?:x(\d+))?)?")


def parse_frames(text: str) -> tuple[int, ...]:
    """The frames `text` names, in the order given, each once."""
    frames: dict[int, None] = {}
    for item in text.replace(" ", "").split(","):
        match = _ITEM.fullmatch(item)
        if not match:
            raise FarmError(f"--frames {text}: {item or 'an empty item'} is not a frame, a range A-B or A-BxSTEP")
        first, last, step = match.groups()
        first, last, step = int(first), int(last if last is not None else first), int(step or 1)
        if last < first:
            raise FarmError(f"--frames {text}: {item} is reversed (did you mean {last}-{first}?)")
        if step < 1:
            raise FarmError(f"--frames {text}: {item} has a step of 0")
        if (last - first) // step + 1 + len(frames) > MAX_FRAMES:
            raise FarmError(f"--frames {text} is over {MAX_FRAMES} frames")
        frames.update(dict.fromkeys(range(first, last + 1, step)))
    return tuple(frames)


def describe(frames: tuple[int, ...]) -> str:
    """`frames` as a short list of ranges: 1-10,12,20-30."""
    parts, start = [], None
    for index, frame in enumerate(frames):
        if start is None:
            start = frame
        if index + 1 == len(frames) or frames[index + 1] != frame + 1:
            parts.append(str(frame) if frame == start else f"{start}-{frame}")
            start = None
    return ",".join(parts)


def check_pattern(output: str, frames: tuple[int, ...]) -> str:
    """The output pattern of a shot: `output` itself where it has one, else `.####` before
    its extension for several frames; one line for a pattern that cannot name frames."""
    fields = [name for _, name, _, _ in string.Formatter().parse(output) if name is not None]
    if fields:
        if set(fields) != {"frame"}:
            raise FarmError(f"-o {output}: the only field an output pattern has is {{frame}}, e.g. shot.{{frame:04d}}.exr")
        try:
            output.format(frame=0)
        except (ValueError, IndexError) as exc:
            raise FarmError(f"-o {output}: {exc}") from None
        return output
    if "#" in Path(output).name:
        return output
    if len(frames) == 1:
        return output
    path = Path(output)
    digits = max(4, len(str(max(frames))))
    return str(path.with_name(f"{path.stem}.{'#' * digits}{path.suffix}"))


def frame_path(pattern: str, frame: int) -> Path:
    """The file of `frame` under `pattern` (check_pattern's)."""
    if any(name is not None for _, name, _, _ in string.Formatter().parse(pattern)):
        return Path(pattern.format(frame=frame))
    path = Path(pattern)
    runs = list(re.finditer(r"#+", path.name))
    if not runs:
        return path
    last = runs[-1]
    name = f"{path.name[:last.start()]}{frame:0{len(last.group())}d}{path.name[last.end():]}"
    return path.with_name(name)


def check_animation(frames: tuple[int, ...], fps: float, span: tuple[float, float] | None, source: str) -> None:
    """One line where a shot's frames fall outside its scene's animation, naming its range."""
    if not fps > 0:
        raise FarmError(f"--fps must be positive, got {fps:g}")
    if span is None:
        return  # a still scene: every frame is the same moment
    first, last = span
    outside = [frame for frame in frames if not first - 1e-9 <= frame / fps <= last + 1e-9]
    if outside:
        low, high = math.ceil(first * fps - 1e-9), math.floor(last * fps + 1e-9)
        raise FarmError(f"--frames {describe(frames)}: {'frames' if len(outside) > 1 else 'frame'} "
                        f"{describe(tuple(outside))} {'are' if len(outside) > 1 else 'is'} outside the animation of {source}, which runs from "
                        f"{first:g}s to {last:g}s: frames {low}-{high} at {fps:g} fps")
