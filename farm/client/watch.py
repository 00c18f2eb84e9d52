"""The live view: a small web page that shows a render as it arrives (`submit --watch`).

A Tornado server in the client, on its own thread: the page (one HTML file, a canvas and a
few lines of script) opens a server-sent event stream and draws each tile as it lands (a
PNG of the bucket, sRGB 8-bit, as the PNG output), outlines each bucket while a worker
renders it with that worker's name, and lists the progress, the notices (lost workers,
buckets sent again, failures) and the farm's jobs. A page opened late fetches the frame so
far first. On the loopback it is open; bound to any other address every request needs the
token printed with its URL (FARM_WATCH_TOKEN, or a random one).
"""

from __future__ import annotations

import asyncio
import base64
import io
import ipaddress
import json
import logging
import secrets
import threading
import time

import numpy as np

from farm import defaults
from farm.exceptions import FarmError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how often the view reads which buckets are rendering, and the jobs


def parse_address(text: str) -> tuple[str, int]:
    """--watch's [HOST:]PORT (port 0: any free one)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise FarmError(f"--watch: expected [HOST:]PORT, e.g. 127.0.0.1:8765, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise FarmError(f"--watch: port {number} is not a port")
    return host or "127.0.0.1", number


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# Longest side of a thumbnail in a shot's strip of frames, in pixels.
STRIP_SIZE = 96


def png(pixels) -> str:
    """Base64 of an (h, w, 3) uint8 image as a PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode()


class LiveView:
    """The view of one render (a JobRun, or several rounds of one): the client thread calls
    `tile` and `notice`; the server's thread reads the run's leases and progress itself."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, redis=None):
        self.host, self.port = host, port
        self.token = "" if _loopback(host) else (defaults.WATCH_TOKEN or secrets.token_urlsafe(16))
        self.redis = redis
        self.run = None  # the JobRun shown now
        self.label = ""  # which round it is, where there are rounds
        self._film = None
        self._notices: list[str] = []
        self._strip: dict[int, dict] = {}  # a shot's written frames' thumbnails, by frame
        self._streams: set = set()
        self._loop = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closing = False
        self._writing = 0  # pages being written to now (on the server's thread)

    # -- the client's side -------------------------------------------------------------------

    def start(self) -> str:
        """Serve, on a thread of its own; returns the page's URL."""
        threading.Thread(target=self._serve, name="farm-watch", daemon=True).start()
        self._ready.wait(10)
        if self._error is not None:
            raise FarmError(f"--watch: cannot serve on {self.host}:{self.port}: {self._error}")
        query = f"?token={self.token}" if self.token else ""
        return f"http://{self.host}:{self.port}/{query}"

    def show(self, run, label: str = "") -> None:
        """Show `run` from now on (a new round's job, into the same film, `label` saying which)."""
        self.run, self._film, self.label = run, run.film, label
        self._send(self._job_event())

    def _job_event(self, frame: bool = False) -> dict:
        """The job shown, its frame's size and round; with `frame`, the page fetches the
        frame so far (a page that connects late)."""
        film = self._film
        return {"type": "job", "job": self.run.job.job_id, "width": film.width, "height": film.height,
                "round": self.label, "frame": frame}

    def frame_done(self, number: int, film) -> None:
        """A frame of a shot is written: its thumbnail joins the page's strip of frames (a
        round's image replaces its frame's; a page that connects late gets them all)."""
        pixels = film.srgb8()
        step = max(1, -(-max(pixels.shape[:2]) // STRIP_SIZE))  # every step-th pixel: at most STRIP_SIZE a side
        event = {"type": "shot_frame", "frame": number, "png": png(np.ascontiguousarray(pixels[::step, ::step]))}
        self._strip[number] = event
        self._send(event)

    def tile(self, bucket) -> None:
        """A bucket's pixels are in the film: send them."""
        region = self._film.srgb8()[bucket.y : bucket.y + bucket.height, bucket.x : bucket.x + bucket.width]
        self._send({"type": "tile", "x": bucket.x, "y": bucket.y, "width": bucket.width, "height": bucket.height,
                    "png": png(region)})
        self._send(self._progress())

    def _progress(self) -> dict:
        """Buckets done of the run's, the rate since it started, and the seconds left at it."""
        run = self.run
        done, total = len(run.records), run.total
        elapsed = time.perf_counter() - run.started
        rate = done / elapsed if elapsed > 0 else 0.0
        return {"type": "progress", "done": done, "total": total, "rate": rate,
                "left": (total - done) / rate if rate > 0 else None}

    def notice(self, message: str) -> None:
        self._notices.append(message)
        self._send({"type": "notice", "message": message})

    def close(self, drain: float = 2.0) -> None:
        """Stop serving, once the pages connected have been sent what was queued for them
        (at most `drain` seconds): the last tiles reach the page before the client exits."""
        if self._loop is None:
            return
        self._closing = True  # no poll after this: nothing renders any more
        self._send({"type": "rendering", "buckets": []})
        if self.run is not None:
            from farm.client.status import job_lines

            try:
                self._send({"type": "jobs", "jobs": job_lines(self.run.job.redis)})
            except Exception as exc:  # the broker may be what ended the render
                log.debug("live view: no last list of jobs: %s", exc)
        try:
            asyncio.run_coroutine_threadsafe(self._drain(), self._loop).result(timeout=drain)
        except Exception:  # a page that does not read: it misses the end
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _drain(self) -> None:
        """Return once every event queued so far has been written to its page."""
        while self._writing or any(not stream.empty() for stream in self._streams):
            await asyncio.sleep(0.01)

    def _send(self, event: dict) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, event)

    # -- the server's thread -----------------------------------------------------------------

    def _broadcast(self, event: dict) -> None:
        data = f"data: {json.dumps(event, separators=(',', ':'))}\n\n"
        for stream in list(self._streams):
            stream.put_nowait(data)

    def _serve(self) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        self._loop = asyncio.get_event_loop()
        try:
            application = self._application()
            server = application.listen(self.port, address=self.host)
            self.port = next(iter(server._sockets.values())).getsockname()[1]
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._loop.create_task(self._poll())
        self._ready.set()
        self._loop.run_forever()

    async def _poll(self) -> None:
        """Every POLL_SECONDS: the buckets rendering now (from the job's leases), the
        progress, and the farm's jobs."""
        from farm.client.status import job_lines

        last_jobs = 0.0
        while True:
            await asyncio.sleep(POLL_SECONDS)
            run = self.run
            if run is None or self._closing:
                continue
            try:
                rendering = [
                    {"x": b.x, "y": b.y, "width": b.width, "height": b.height, "worker": lease.worker}
                    for lease in run.job.deliveries.leases() if lease.bucket not in run.records
                    for b in [run.job.bucket(lease.bucket)]
                ]
                self._broadcast({"type": "rendering", "buckets": rendering})
                self._broadcast(self._progress())
                if time.monotonic() - last_jobs > 2 * POLL_SECONDS:
                    self._broadcast({"type": "jobs", "jobs": job_lines(run.job.redis)})
                    last_jobs = time.monotonic()
            except Exception as exc:  # the broker may be away for a while: the page waits
                log.debug("live view poll failed: %s", exc)

    def _application(self):
        import tornado.web

        view = self

        class Guarded(tornado.web.RequestHandler):
            def prepare(self):
                if view.token and not secrets.compare_digest(self.get_argument("token", ""), view.token):
                    raise tornado.web.HTTPError(403, "this view needs its token (?token=...)")

        class Page(Guarded):
            def get(self):
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.write(PAGE.replace("__TOKEN__", json.dumps(view.token)))

        class Frame(Guarded):
            def get(self):
                self.set_header("Content-Type", "image/png")
                self.set_header("Cache-Control", "no-store")
                film = view._film
                self.write(base64.b64decode(png(film.srgb8())) if film is not None else b"")

        class Events(Guarded):
            async def get(self):
                self.set_header("Content-Type", "text/event-stream")
                self.set_header("Cache-Control", "no-store")
                queue: asyncio.Queue = asyncio.Queue()
                view._streams.add(queue)
                try:
                    if view.run is not None:  # what a late page needs first
                        queue.put_nowait(f"data: {json.dumps(view._job_event(frame=True))}\n\n")
                        for message in view._notices:
                            queue.put_nowait(f"data: {json.dumps({'type': 'notice', 'message': message})}\n\n")
                    for event in list(view._strip.values()):  # the shot's frames written so far
                        queue.put_nowait(f"data: {json.dumps(event)}\n\n")
                    while True:
                        event = await queue.get()
                        view._writing += 1
                        try:
                            self.write(event)
                            await self.flush()
                        finally:
                            view._writing -= 1
                except tornado.iostream.StreamClosedError:
                    pass
                finally:
                    view._streams.discard(queue)

        import tornado.iostream

        return tornado.web.Application([(r"/", Page), (r"/frame.png", Frame), (r"/events", Events)])


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>farm: live view</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
#stage{position:relative;display:inline-block;background:#000}
canvas{display:block;image-rendering:pixelated}
.bucket{position:absolute;border:1px solid #ffcc00;box-sizing:border-box;pointer-events:none}
.bucket span{position:absolute;left:1px;top:1px;font-size:10px;color:#000;background:#ffcc00;padding:0 2px;white-space:nowrap}
#bar{width:400px;height:10px;background:#ddd;margin:8px 0}#fill{height:100%;width:0;background:#0072B2}
#notices li{color:#b00}
#strip figure{display:inline-block;margin:2px;text-align:center;font-size:11px}#strip img{display:block;border:1px solid #ccc}
</style></head><body>
<h1 id="title">farm: waiting for a job</h1><div id="round"></div>
<div id="stage"><canvas id="frame" width="1" height="1"></canvas></div>
<div id="bar"><div id="fill"></div></div><div id="progress"></div>
<h2>Frames written</h2><div id="strip"></div>
<h2>Notices</h2><ul id="notices"></ul>
<h2>Jobs on the farm</h2><pre id="jobs"></pre>
<script>
const token = __TOKEN__;
const query = token ? "?token=" + encodeURIComponent(token) : "";
const canvas = document.getElementById("frame"), context = canvas.getContext("2d");
const stage = document.getElementById("stage");
let outlines = [], zoom = 1;
function draw(x, y, src) {
  const image = new Image();
  image.onload = () => context.drawImage(image, x, y);
  image.src = src;
}
const source = new EventSource("/events" + query);
source.onmessage = (message) => {
  const event = JSON.parse(message.data);
  if (event.type === "job") {
    document.getElementById("title").textContent = "farm: job " + event.job;
    document.getElementById("round").textContent = event.round;  // the frame refines round by round
    if (canvas.width !== event.width || canvas.height !== event.height) {
      canvas.width = event.width; canvas.height = event.height;
      zoom = Math.max(1, Math.floor(512 / Math.max(event.width, event.height)));  // small frames drawn larger
      canvas.style.width = (event.width * zoom) + "px";
      canvas.style.height = (event.height * zoom) + "px";
    }
    if (event.frame) draw(0, 0, "/frame.png" + query + (query ? "&" : "?") + "t=" + Date.now());
  } else if (event.type === "tile") {
    draw(event.x, event.y, "data:image/png;base64," + event.png);
  } else if (event.type === "rendering") {
    outlines.forEach((div) => div.remove());
    outlines = event.buckets.map((b) => {
      const div = document.createElement("div");
      div.className = "bucket";
      div.dataset.worker = b.worker;
      Object.assign(div.style, {left: b.x * zoom + "px", top: b.y * zoom + "px",
                                width: b.width * zoom + "px", height: b.height * zoom + "px"});
      const label = document.createElement("span");
      label.textContent = b.worker;
      div.appendChild(label);
      stage.appendChild(div);
      return div;
    });
  } else if (event.type === "progress") {
    document.getElementById("fill").style.width = (100 * event.done / Math.max(event.total, 1)) + "%";
    const left = event.left === null ? "" : ", " + event.left.toFixed(1) + " s left";
    document.getElementById("progress").textContent =
      event.done + " of " + event.total + " buckets, " + event.rate.toFixed(1) + " a second" + left;
  } else if (event.type === "shot_frame") {  // a shot's frame written: its thumbnail, in frame order
    let figure = document.getElementById("shot-frame-" + event.frame);
    if (!figure) {
      figure = document.createElement("figure");
      figure.id = "shot-frame-" + event.frame;
      figure.dataset.frame = event.frame;
      figure.appendChild(document.createElement("img"));
      const caption = document.createElement("figcaption");
      caption.textContent = "frame " + event.frame;
      figure.appendChild(caption);
      const strip = document.getElementById("strip");
      const after = Array.from(strip.children).find((f) => Number(f.dataset.frame) > event.frame);
      strip.insertBefore(figure, after || null);
    }
    figure.querySelector("img").src = "data:image/png;base64," + event.png;
  } else if (event.type === "notice") {
    const item = document.createElement("li");
    item.textContent = event.message;
    document.getElementById("notices").appendChild(item);
  } else if (event.type === "jobs") {
    document.getElementById("jobs").textContent = event.jobs.join("\\n");
  }
};
</script></body></html>
"""


def follow(job, view: LiveView):
    """Show a job another client collects in `view` until it ends: its tiles read from
    Redis as they are stored (its events stay for that client), its lost deliveries and
    failures from its record. Returns how it ended and the run that watched it."""
    from farm.client.run import JobRun
    from farm.client.start import film_of
    from farm.protocol.jobs import JobState

    meta = job.meta
    film, wanted = film_of(job)
    run = JobRun(job, film, queue=None, wanted=wanted)
    view.show(run, f"a round: samples {meta.samples[0]} to {meta.samples[1]}" + (" (per cell)" if meta.cell else "")
              if meta.sums else "")
    run.watch(on_bucket=view.tile)
    seen: dict[tuple[str, bytes], bytes] = {}
    while True:
        state = job.refresh()
        run.take_stored()
        troubles = job.deliveries.troubles()
        for part, say in (("crashes", "bucket {}: a delivery lost with its worker or render process ({} so far)"),
                          ("errors", "bucket {} failed: {}")):  # the notices its client tells
            for field, value in troubles[part].items():
                if seen.get((part, field)) != value:
                    seen[(part, field)] = value
                    view.notice(say.format(field.decode(), value.decode(errors="replace")))
        if state or len(run.records) >= run.total:
            return state or JobState.DONE, run
        time.sleep(POLL_SECONDS)
