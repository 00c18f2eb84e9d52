"""The command line's options: what `submit`, `farm collect` and friends accept, and the
types that check them as they are parsed (each error one line, as argparse prints it)."""

from __future__ import annotations

import argparse

from farm import defaults
from farm.buckets import ORDERS
from farm.exceptions import FarmError

INTERRUPT_CHOICES = ("ask", "cancel", "detach")


def add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene", nargs="?", help="scene file: JSON (format version 1), or glTF 2.0 (.gltf, .glb)")
    parser.add_argument("-o", "--output", required=True, help="image to write: .png (sRGB, 8-bit) or .exr (linear float)")
    parser.add_argument("--resume", metavar="JOB",
                        help="collect a job already on the farm (its client died or detached) instead of a scene")
    parser.add_argument("--on-interrupt", choices=INTERRUPT_CHOICES, default="ask",
                        help="what Ctrl-C does to the job: ask (default; cancel when there is no terminal to "
                             "ask on), cancel, or detach (it keeps rendering; `farm collect JOB` fetches it)")
    parser.add_argument("--spp", type=int, help="samples per pixel (overrides the scene's film.spp)")
    parser.add_argument("--resolution", type=resolution, metavar="WxH",
                        help="image size in pixels, e.g. 1920x1080 (overrides the scene's film)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="render even if textures or environment maps are missing, with those maps turned "
                             "off (each named in a warning); by default a missing file stops the submit")
    parser.add_argument("--frames", metavar="LIST",
                        help="render these frames of the scene's animation as a shot: 1-100, 1-100x5 (every fifth), "
                             "1,5,10-20; frame F is the moment F/--fps seconds. -o then names a pattern: "
                             "shot.####.exr or shot.{frame:04d}.exr (else .#### goes before the extension)")
    parser.add_argument("--fps", type=float, default=24.0, help="frames per second of --frames (default 24)")
    parser.add_argument("--detach", action="store_true",
                        help="upload the scene, hand the job to the farm's manager (`farm manager`), print its id "
                             "and exit: the manager renders it into its output store (FARM_OUTPUT_DIR/<id>/, the "
                             "-o name); `farm wait ID` blocks until it ends, `farm fetch ID -o DIR` downloads it, "
                             "`farm jobs` lists them")
    parser.add_argument("--name", help="with --detach: the job's name in `farm jobs` (default: the -o name's stem)")
    parser.add_argument("--require", metavar="TAG[,TAG]",
                        help="only workers holding every one of these tags render the job (FARM_TAGS, and the "
                             "device kind, cpu or gpu, is a tag by itself), e.g. --require gpu,lookdev")
    parser.add_argument("--allow-mixed-devices", action="store_true",
                        help="let workers of other device kinds or build options render one frame: the frame is "
                             "then exact on each kind's own terms only, not bit-identical to a render on one "
                             "kind (default: the first worker pins the job to its kernel identity)")
    parser.add_argument("--max-workers", type=int, metavar="N",
                        help="at most N workers render the job at once (N of its buckets queued or rendering; "
                             "default: every worker)")
    parser.add_argument("--priority", type=int, metavar="0-100",
                        help="the job's priority, higher first (default 50): the workers take the buckets of the "
                             "highest band first (five bands of 20), and the manager starts its frames first; "
                             "`farm priority JOB N` changes it while it renders")
    parser.add_argument("--shutter", type=shutter, default=(0.0, 0.0), metavar="OPEN,CLOSE",
                        help="motion blur: the shutter is open from OPEN to CLOSE frames around each frame's "
                             "moment, e.g. -0.25,0.25 (at most a frame either side; default closed, 0,0). Moving "
                             "shapes and the camera blur; deforming meshes, lights and shapes that emit light "
                             "render at the frame's moment")
    parser.add_argument("--animation", metavar="NAME|INDEX",
                        help="a glTF file's animation to play (by its name or index); default: all of them")
    parser.add_argument("--camera", metavar="NAME",
                        help="a glTF file's camera (by its name or its node's) or a USD stage's (by its prim "
                             "path, e.g. /World/Cam); default: the scene's own, else the first")
    parser.add_argument("--skip-existing", action="store_true",
                        help="with --frames: leave out the frames whose file is already written")
    parser.add_argument("--bucket-size", type=int,
                        help=f"bucket side in pixels (default {defaults.BUCKET_SIZE}, FARM_BUCKET_SIZE; a shot of "
                             f"many small frames: a frame a bucket)")
    parser.add_argument("--order", choices=ORDERS, default=defaults.BUCKET_ORDER,
                        help=f"order buckets are handed out in (default {defaults.BUCKET_ORDER})")
    parser.add_argument("--broker", default=defaults.BROKER_URL or None,
                        help="Redis URL of a running farm (default FARM_BROKER_URL); without one, an embedded "
                             "Redis and --workers local workers are started")
    parser.add_argument("--workers", type=int, default=defaults.LOCAL_WORKERS,
                        help=f"local workers in embedded mode (default {defaults.LOCAL_WORKERS}, FARM_WORKERS)")
    parser.add_argument("--device", help="OpenCL device of the local workers: auto, gpu, cpu or a name (FARM_DEVICE)")
    add_output_options(parser)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aov", default="", metavar="LIST",
                        help="also render these layers, comma-separated, into the EXR output: albedo, normal "
                             "(at the first hit that is not a mirror or smooth glass; world space), depth "
                             "(distance along the camera ray), variance (of each pixel's mean luminance), material (index of "
                             "the material the pixel's first sample hits first; -1: none)")
    parser.add_argument("--progressive", action="store_true",
                        help="render the whole frame in rounds of 1, 2, 4, ... samples per pixel, rewriting the "
                             "output after each; Ctrl-C keeps the last complete round. The last round is the "
                             "same bits as one render of all the samples")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="with --progressive or --noise, stop the rounds when SECONDS have passed: a round "
                             "that would not finish in the time left is cut to the share of its samples that fits "
                             "(or not started where none does), and one still rendering at the limit is cancelled; "
                             "the first round always finishes. The output holds the last complete round")
    parser.add_argument("--split-tail", action="store_true",
                        help="send the frame's last N buckets (N: the live workers) as N parts of their samples "
                             "each (at most FARM_MAX_SPLIT), so the last bucket does not keep the others idle; "
                             "the parts add up to the same bits as the whole bucket")
    parser.add_argument("--noise", type=float, metavar="E",
                        help="render in rounds until every 8-px cell's relative standard error (RMS over its "
                             "pixels) is at most E, e.g. 0.01: the first round gives every pixel --min-spp "
                             "samples, each next one only the cells still above E, up to --max-spp. The EXR "
                             "gets the variance layer it steered by")
    parser.add_argument("--min-spp", type=int, default=defaults.NOISE_MIN_SPP,
                        help=f"with --noise, samples every pixel gets (default {defaults.NOISE_MIN_SPP})")
    parser.add_argument("--max-spp", type=int,
                        help="with --noise, the most samples a pixel gets (default: (3/E)^2 from the target, "
                             "e.g. 22500 for 0.02); cells it stops above the target are named in one line")
    denoising = parser.add_mutually_exclusive_group()  # one `denoise` setting: None, "guided" or "prefiltered"
    denoising.add_argument("--denoise", action="store_const", const="guided",
                           help="denoise the assembled frame with Intel Open Image Denoise (pyoidn), guided by "
                                "albedo and normal; an EXR keeps the raw beauty as its layer `raw`")
    denoising.add_argument("--denoise-prefilter", dest="denoise", action="store_const", const="prefiltered",
                              help="--denoise with the albedo and normal guides denoised first (OIDN's prefiltering, "
                                "cleanAux): better where the guides are noisy (depth of field, glass, fine texture), "
                                "worse where they are clean; `farm bench --quality` measures both on a scene")
    parser.add_argument("--watch", nargs="?", const="127.0.0.1:0", metavar="[HOST:]PORT", type=watch_address,
                        help="serve a live view of the render (the frame filling in, the buckets rendering with "
                             "their workers, progress, notices, the farm's jobs) and print its URL; on 127.0.0.1 "
                             "and any free port by default; bound to another address it asks for a token "
                             "(FARM_WATCH_TOKEN, or a random one in the printed URL)")
    parser.add_argument("--report", help="write a report of the job to this path: JSON, or with .html the page of "
                                         "`farm report` (bucket map, timeline, figures)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the client does")


def add_broker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", default=defaults.BROKER_URL or None,
                        help="Redis URL of the farm (default FARM_BROKER_URL)")


def watch_address(text: str) -> tuple[str, int]:
    from farm.client.watch import parse_address

    try:
        return parse_address(text)
    except FarmError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--watch: ")) from None


def glued(argv: list[str], options: tuple[str, ...] = ("--shutter",)) -> list[str]:
    """`argv` with a value that starts with a minus sign glued to its option (`--shutter
    -0.25,0.25` as `--shutter=-0.25,0.25`), which argparse would take for an option."""
    out, index = [], 0
    while index < len(argv):
        if argv[index] in options and index + 1 < len(argv) and argv[index + 1][:2] in {f"-{c}" for c in "0123456789."}:
            out.append(f"{argv[index]}={argv[index + 1]}")
            index += 2
        else:
            out.append(argv[index])
            index += 1
    return out


def shutter(text: str) -> tuple[float, float]:
    """--shutter's OPEN,CLOSE in frames: finite, OPEN before CLOSE (or both 0), at most a frame from the moment."""
    import math

    try:
        opens, closes = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected OPEN,CLOSE in frames, e.g. -0.25,0.25, got {text!r}") from None
    if not all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in (opens, closes)):
        raise argparse.ArgumentTypeError(f"OPEN and CLOSE are at most a frame from the frame's moment "
                                         f"(-1 to 1), got {text!r}")
    if not (opens < closes or opens == closes == 0.0):
        raise argparse.ArgumentTypeError(f"the shutter opens before it closes, got {text!r}")
    return opens, closes


def resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    return width, height


def aovs(text: str) -> tuple[str, ...]:
    """--aov's comma-separated names, each one of AOVS."""
    from farm.protocol.description import AOVS

    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in AOVS]
    if unknown:
        raise FarmError(f"--aov: unknown AOV {', '.join(unknown)} (known: {', '.join(AOVS)})")
    return names


class Version(argparse.Action):
    """--version: farm's version, looked up only when asked (the package metadata costs a
    few tens of milliseconds at every start otherwise)."""

    def __init__(self, option_strings, dest, **_):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print farm's version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"farm {_version()}")
        parser.exit()


def _version() -> str:
    """The installed farm's version (pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("farm")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"
