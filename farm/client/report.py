"""A job's report as a page a person reads at a glance: `farm report REPORT.json -o x.html`.

The bucket map (the frame, each bucket coloured by the worker that rendered it), the
timeline (one lane per worker, one bar per bucket from the start of its render to its tile
in the film; buckets that took more than one delivery outlined in red, copies of
stragglers hatched; the client's notices, such as lost workers, as marks on the time
axis), and the summary figures. Plain SVG in one self-contained HTML file: no script, no
library, opens anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from farm.exceptions import FarmError

# Colour-blind-safe categorical colours (Okabe and Ito), then greys for many workers.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# What each bucket of a report must hold to be drawn (run.BucketRecord).
BUCKET_FIELDS = {"index": int, "x": int, "y": int, "width": int, "height": int, "worker": str, "attempts": int,
                 "seconds": (int, float), "arrived": (int, float)}
MAP_WIDTH = 640  # px: the frame drawn at most this wide
LANE = 22  # px per worker in the timeline
TIMELINE_WIDTH = 900


def read(path: str | Path) -> dict:
    """A report written by `submit --report`, or a FarmError saying why it is not one."""
    try:
        report = json.loads(Path(path).read_text())
    except OSError as exc:
        raise FarmError(f"{path}: cannot read the report: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise FarmError(f"{path}: not a JSON report ({exc})") from None
    if not isinstance(report, dict):
        raise FarmError(f"{path}: not a farm job report (a JSON object is expected)")
    missing = [key for key in ("job_id", "width", "height", "wall_seconds", "buckets") if key not in report]
    if missing:
        raise FarmError(f"{path}: not a farm job report (missing {', '.join(missing)})")
    numbers = {"width": int, "height": int, "wall_seconds": (int, float)}
    for key, kind in numbers.items():
        if not isinstance(report[key], kind) or isinstance(report[key], bool) or report[key] < 0:
            raise FarmError(f"{path}: {key} is not a number of the report's kind: {report[key]!r}")
    if not isinstance(report["buckets"], list):
        raise FarmError(f"{path}: buckets is not a list")
    for number, bucket in enumerate(report["buckets"]):
        wrong = [key for key, kind in BUCKET_FIELDS.items()
                 if not isinstance(bucket, dict) or not isinstance(bucket.get(key), kind) or isinstance(bucket.get(key), bool)]
        if wrong:
            raise FarmError(f"{path}: bucket entry {number} lacks a valid {', '.join(wrong)}")
    return report


def colours(report: dict) -> dict[str, str]:
    """Each worker's colour, in the order of their first bucket."""
    workers = list(dict.fromkeys(bucket["worker"] for bucket in report["buckets"]))
    return {worker: PALETTE[i] if i < len(PALETTE) else f"hsl({(i * 47) % 360},45%,55%)"
            for i, worker in enumerate(workers)}


def page(report: dict) -> str:
    """The whole HTML page of `report`."""
    title = f"farm job {report['job_id'][:12]}"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}"
            "table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}"
            "svg text{font:11px system-ui,sans-serif}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>\n{_summary(report)}\n<h2>Bucket map</h2>\n{bucket_map(report)}\n"
            f"<h2>Timeline</h2>\n{timeline(report)}\n</body></html>\n")


def _summary(report: dict) -> str:
    buckets = report["buckets"]
    per_worker: dict[str, list[float]] = {}
    for bucket in buckets:
        per_worker.setdefault(bucket["worker"], []).append(bucket["seconds"])
    wall = report["wall_seconds"]
    rows = [("frame", f"{report['width']}x{report['height']}, {report.get('spp', '?')} spp, "
                      f"{report.get('bucket_size', '?')} px buckets"),
            ("wall time", f"{wall:.2f} s"), ("buckets", str(len(buckets)))]
    for key, label in (("resent", "buckets sent again"), ("copies", "copies of slow buckets"),
                       ("lost_deliveries", "deliveries lost with their worker"),
                       ("duplicates", "duplicate tiles discarded"), ("invalid_tiles", "invalid tiles rejected")):
        rows.append((label, str(report.get(key, 0))))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    palette = colours(report)
    workers = "".join(
        f"<tr><td><span style=\"color:{palette[w]}\">&#9632;</span> {html.escape(w)}</td><td>{len(s)} buckets</td>"
        f"<td>{sum(s):.2f} s rendering</td><td>{100 * sum(s) / wall if wall else 0:.0f}% busy</td></tr>"
        for w, s in per_worker.items())
    notices = "".join(f"<li>{html.escape(n)}</li>" for n in report.get("notices", []))
    return (f"<table>{table}</table>\n<h2>Workers</h2>\n<table>{workers}</table>\n"
            + (f"<h2>Notices</h2>\n<ul>{notices}</ul>" if notices else ""))


def bucket_map(report: dict) -> str:
    """The frame with every bucket coloured by its worker (hover: which, how long, attempts)."""
    width, height = report["width"], report["height"]
    scale = min(1.0, MAP_WIDTH / width) if width else 1.0
    palette = colours(report)
    parts = [f"<svg class=\"bucket-map\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width * scale:.0f}\" "
             f"height=\"{height * scale:.0f}\" viewBox=\"0 0 {width} {height}\">",
             f"<rect width=\"{width}\" height=\"{height}\" fill=\"#eee\"/>"]
    for bucket in report["buckets"]:
        tip = (f"bucket {bucket['index']}: {bucket['worker']}, {bucket['seconds']:.3f} s, "
               f"{bucket['attempts']} deliver{'y' if bucket['attempts'] == 1 else 'ies'}")
        stroke = "#d00" if bucket["attempts"] > 1 else "#fff"
        parts.append(f"<rect class=\"bucket\" data-worker=\"{html.escape(bucket['worker'])}\" x=\"{bucket['x']}\" "
                     f"y=\"{bucket['y']}\" width=\"{bucket['width']}\" height=\"{bucket['height']}\" "
                     f"fill=\"{palette[bucket['worker']]}\" fill-opacity=\"0.8\" stroke=\"{stroke}\" "
                     f"stroke-width=\"{1 / scale:.2f}\"><title>{html.escape(tip)}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def timeline(report: dict) -> str:
    """One lane per worker; a bar per bucket from its render's start to its tile's arrival."""
    palette = colours(report)
    lanes = {worker: i for i, worker in enumerate(palette)}
    copies = set(report.get("copied", []))
    label, wall = 150, max(report["wall_seconds"], 1e-6)
    span = TIMELINE_WIDTH - label - 10
    height = LANE * max(1, len(lanes)) + 30
    parts = [f"<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{TIMELINE_WIDTH}\" "
             f"height=\"{height}\"><defs><pattern id=\"hatch\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" "
             "patternTransform=\"rotate(45)\"><rect width=\"2\" height=\"4\" fill=\"#fff\" fill-opacity=\"0.6\"/>"
             "</pattern></defs>"]
    for worker, lane in lanes.items():
        y = lane * LANE
        parts.append(f"<text x=\"0\" y=\"{y + 15}\">{html.escape(worker[:24])}</text>"
                     f"<line x1=\"{label}\" x2=\"{label + span}\" y1=\"{y + LANE - 1}\" y2=\"{y + LANE - 1}\" "
                     "stroke=\"#ddd\"/>")
    for bucket in report["buckets"]:
        start = max(0.0, bucket["arrived"] - bucket["seconds"])
        x = label + span * start / wall
        bar = max(1.0, span * (bucket["arrived"] - start) / wall)
        y = lanes[bucket["worker"]] * LANE + 3
        outline = " stroke=\"#d00\" stroke-width=\"2\"" if bucket["attempts"] > 1 else ""
        tip = f"bucket {bucket['index']}: {start:.2f}-{bucket['arrived']:.2f} s, {bucket['attempts']} deliveries"
        parts.append(f"<rect class=\"span\" x=\"{x:.1f}\" y=\"{y}\" width=\"{bar:.1f}\" height=\"{LANE - 6}\" "
                     f"fill=\"{palette[bucket['worker']]}\"{outline}><title>{html.escape(tip)}</title></rect>")
        if bucket["index"] in copies:
            parts.append(f"<rect x=\"{x:.1f}\" y=\"{y}\" width=\"{bar:.1f}\" height=\"{LANE - 6}\" fill=\"url(#hatch)\"/>")
    for event in report.get("events", []):
        x = label + span * min(event["at"], wall) / wall
        parts.append(f"<line class=\"notice\" x1=\"{x:.1f}\" x2=\"{x:.1f}\" y1=\"0\" y2=\"{height - 20}\" stroke=\"#d00\" "
                     f"stroke-dasharray=\"3,2\"><title>{html.escape(event['message'])}</title></line>")
    axis = height - 8
    for step in range(5):
        at = wall * step / 4
        parts.append(f"<text x=\"{label + span * step / 4:.1f}\" y=\"{axis}\" text-anchor=\"middle\">{at:.1f} s</text>")
    parts.append("</svg>")
    return "".join(parts)


def write(report: dict, path: str | Path) -> Path:
    path = Path(path)
    try:
        path.write_text(page(report))
    except OSError as exc:
        raise FarmError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    return path
