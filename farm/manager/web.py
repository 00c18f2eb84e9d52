"""The manager's web UI and API (Tornado, on a thread of the `farm manager` process, as the
live view is): the jobs page, a job's page, the workers page, the actions on a job, and the
files of a job for `farm fetch`.

Every request needs the manager's token (farm.manager.jobs.token): a page opened with
`?token=` or signed in at /login gets a signed, HTTP-only, SameSite=Strict cookie; the API
takes `Authorization: Bearer TOKEN`. Every form carries Tornado's XSRF field, checked on
each POST (a request with the bearer header needs none: a page of another site cannot set
it). Values are escaped by the templates (farm.manager.pages). Bound to 127.0.0.1 unless
FARM_MANAGER_ADDRESS says otherwise. Cf. Flower's --basic_auth, Flamenco's web UI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from farm.exceptions import FarmError
from farm.manager import jobs
from farm.manager.jobs import eta

log = logging.getLogger(__name__)

COOKIE = "farm_manager"
ACTIONS = ("pause", "resume", "cancel", "retry", "priority")


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise FarmError(f"manager address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8780 (or off)")
    return host or "127.0.0.1", int(port)


class ManagerWeb:
    def __init__(self, redis, app, store, address: str, manager=None):
        self.redis, self.app, self.store, self.manager = redis, app, store, manager
        self.host, self.port = parse_address(address)
        self.token = jobs.token(redis)
        self.url = ""
        self._loop = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> str:
        """Serve on a thread of its own; the UI's URL."""
        threading.Thread(target=self._serve, name="farm-manager-web", daemon=True).start()
        self._ready.wait(10)
        if self._error is not None:
            raise FarmError(f"manager: cannot serve its web UI on {self.host}:{self.port}: {self._error}")
        self.url = f"http://{self.host}:{self.port}"
        return self.url

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _serve(self) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        self._loop = asyncio.get_event_loop()
        try:
            server = self.application().listen(self.port, address=self.host)
            self.port = next(iter(server._sockets.values())).getsockname()[1]
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    # -- what the pages show -------------------------------------------------------------------

    def job_rows(self) -> list[dict]:
        rows = list(jobs.entries(self.redis).values())[::-1]  # newest first
        with self.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.exists(f"{jobs.key_for(row['id'])}:thumbnail")
            for row, has in zip(rows, pipe.execute()):
                row["thumbnail"] = bool(has)
                row.setdefault("last_frame", "")
        return rows

    def worker_rows(self) -> list[dict]:
        from farm.protocol import registry
        from farm.protocol.jobs import Job
        from farm.protocol.record import JobRecord

        found = registry.workers(self.redis)
        about = registry.about(self.redis, list(found))
        now: dict[str, str] = {}
        for job_id in JobRecord.ids(self.redis):
            try:
                for lease in Job.load(self.redis, job_id).deliveries.leases():
                    now[lease.worker] = f"job {job_id[:8]} bucket {lease.bucket}"
            except FarmError:
                continue
        return [{"hostname": record.hostname, "host": record.host, "bad": record.bad,
                 "device": about.get(name, {}).get("device", "(not said yet)"),
                 "kernel": about.get(name, {}).get("kernel", ""), "tags": about.get(name, {}).get("tags", ""),
                 "now": now.get(name, "rendering" if record.busy else "idle")}
                for name, record in sorted(found.items())]

    def live(self, job_id: str):
        """The film of the job's first frame in flight and its buckets rendering (the leading
        manager's; None elsewhere)."""
        shot = self.manager.shots.get(job_id) if self.manager is not None else None
        try:  # the manager's thread changes these as frames start and end: a copy, and again if it moved
            renders = [render for render in list(shot.active if shot else ()) if render.run is not None]
        except RuntimeError:
            return None, []
        if not renders:
            return None, []
        run = renders[0].run
        with_leases = []
        try:
            with_leases = [(lease.bucket, lease.worker) for lease in run.job.deliveries.leases()
                           if lease.bucket not in run.records]
        except FarmError:
            pass
        return run.film, with_leases

    def application(self):
        import tornado.template
        import tornado.web

        from farm.manager import pages

        web = self
        loader = tornado.template.DictLoader(pages.TEMPLATES, autoescape="xhtml_escape")

        class Base(tornado.web.RequestHandler):
            def get_template_namespace(self):
                return {**super().get_template_namespace(), "style": pages.STYLE, "eta": eta, "back": self.request.path}

            def get_current_user(self):
                if self._bearer():
                    return "api"
                cookie = self.get_signed_cookie(COOKIE, max_age_days=30)
                return "page" if cookie and _same(cookie.decode(errors="replace"), _fingerprint(web.token)) else None

            def _bearer(self) -> bool:
                given = self.request.headers.get("Authorization", "")
                return given.startswith("Bearer ") and _same(given[7:].strip(), web.token)

            def check_xsrf_cookie(self):
                if self._bearer():
                    return  # a valid token in a header no page of another site can send
                super().check_xsrf_cookie()

            def prepare(self):
                given = self.get_query_argument("token", "")
                if given and _same(given, web.token) and self.request.method == "GET":
                    self._sign_in()
                    self.redirect(self.request.path)
                    return
                if self.current_user is None:
                    self.set_status(401)
                    if self.request.path.startswith("/api/") or self.request.method != "GET":
                        self.finish({"error": "the manager's token is needed (Authorization: Bearer TOKEN)"})
                    else:
                        self.finish(self.render_string("login.html", next=self.request.path))

            def _sign_in(self):
                self.set_signed_cookie(COOKIE, _fingerprint(web.token), expires_days=30, httponly=True,
                                       samesite="Strict")

            def page(self, title: str, fragment: str, source: str):
                self.render("frame.html", title=title, fragment=fragment, source=source)

        class Login(Base):
            def prepare(self):
                pass

            def get(self):
                self.render("login.html", next=self.get_query_argument("next", "/"))

            def post(self):
                if not _same(self.get_body_argument("token", ""), web.token):
                    self.set_status(401)
                    self.render("login.html", next=_local(self.get_body_argument("next", "/")))
                    return
                self._sign_in()
                self.redirect(_local(self.get_body_argument("next", "/")))

        class JobsPage(Base):
            def get(self):
                fragment = self.render_string("jobs.html", jobs=web.job_rows()).decode()
                self.page("jobs", fragment, "/fragments/jobs")

        class JobsFragment(Base):
            def get(self):
                self.render("jobs.html", jobs=web.job_rows(), back="/")

        class JobPage(Base):
            def get(self, job_id):
                self.page(f"job {_job(web, job_id)['name']}", self._fragment(job_id), f"/fragments/jobs/{job_id}")

            def _fragment(self, job_id):
                job = _job(web, job_id)
                film, rendering = web.live(job_id)
                return self.render_string("job.html", job=job, files=sorted(web.store.files(job_id).items()),
                                          live=film is not None, rendering=rendering, now=time.time(),
                                          back=f"/jobs/{job_id}", url_escape=urllib.parse.quote).decode()

        class JobFragment(JobPage):
            def get(self, job_id):
                self.write(self._fragment(job_id))

        class Picture(Base):
            def get(self, job_id, which):
                if which == "thumbnail":
                    data = web.redis.get(f"{jobs.key_for(job_id)}:thumbnail")
                else:
                    film, _ = web.live(job_id)
                    data = _png(film) if film is not None else None
                if data is None:
                    raise tornado.web.HTTPError(404)
                self.set_header("Content-Type", "image/png")
                self.set_header("Cache-Control", "no-store")
                self.write(data)

        class Files(Base):
            def get(self, job_id, name):
                _job(web, job_id)  # `name` arrives decoded (Tornado's path arguments)
                if name not in web.store.files(job_id):
                    raise tornado.web.HTTPError(404)
                self.set_header("Content-Type", "application/octet-stream")
                self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{urllib.parse.quote(name)}")
                for chunk in web.store.read(job_id, name):
                    self.write(chunk)

        class Action(Base):
            def post(self, job_id, action):
                try:
                    if action in ("pause", "resume"):
                        jobs.pause(web.redis, job_id, action == "pause")
                    elif action == "cancel":
                        jobs.cancel(web.redis, web.app, job_id)
                    elif action == "retry":
                        jobs.retry(web.redis, job_id)
                    else:
                        jobs.set_priority(web.redis, job_id, self.get_body_argument("priority", ""))
                except FarmError as exc:
                    raise tornado.web.HTTPError(400, reason=str(exc).splitlines()[0][:200]) from None
                if self.current_user == "api":
                    self.write({"job": job_id, "done": action})
                else:
                    self.redirect(_local(self.get_body_argument("back", "/")), status=303)

        class WorkersPage(Base):
            def get(self):
                fragment = self.render_string("workers.html", workers=web.worker_rows()).decode()
                self.page("workers", fragment, "/fragments/workers")

        class WorkersFragment(Base):
            def get(self):
                self.render("workers.html", workers=web.worker_rows())

        class Api(Base):
            def get(self, job_id=None):
                if job_id is None:
                    self.write({"jobs": web.job_rows()})
                else:
                    self.write({**_job(web, job_id), "files": web.store.files(job_id)})

        job = r"([0-9a-f]{32})"
        return tornado.web.Application([
            (r"/", JobsPage), (r"/login", Login), (r"/workers", WorkersPage),
            (r"/fragments/jobs", JobsFragment), (rf"/fragments/jobs/{job}", JobFragment),
            (r"/fragments/workers", WorkersFragment), (rf"/jobs/{job}", JobPage),
            (rf"/jobs/{job}/(thumbnail|live)\.png", Picture), (rf"/jobs/{job}/files/([^/]+)", Files),
            (rf"/jobs/{job}/({'|'.join(ACTIONS)})", Action),
            (r"/api/jobs", Api), (rf"/api/jobs/{job}", Api),
        ], template_loader=loader, xsrf_cookies=True, cookie_secret=hashlib.sha256(b"farm-manager-cookie:" +
                                                                                   web.token.encode()).hexdigest())


def _same(given: str, token: str) -> bool:
    """Whether a token given equals the manager's, in constant time (any text, not only ASCII)."""
    return secrets.compare_digest(given.encode(errors="replace"), token.encode())


def _fingerprint(token: str) -> str:
    return hashlib.sha256(b"farm-manager-session:" + token.encode()).hexdigest()


def _local(path: str) -> str:
    """A path on this site only (no open redirect)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _job(web: ManagerWeb, job_id: str) -> dict:
    import tornado.web

    found = jobs.entry(web.redis, job_id)
    if found is None:
        raise tornado.web.HTTPError(404, reason="no such job")
    return found


def _png(film) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(film.srgb8(), "RGB").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def download(url: str, token: str, job_id: str, folder: Path) -> list[tuple[Path, int]]:
    """`farm fetch`: every file of a job from the manager at `url` into `folder`, each
    written whole (a partial download leaves no file)."""
    from farm.client.film import write_whole

    def get(path: str):
        try:
            request = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"Bearer {token}"})
            return urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as exc:
            hint = " (the manager's token: set FARM_MANAGER_TOKEN as the manager has it)" if exc.code == 401 else ""
            raise FarmError(f"manager {url}: {path}: {exc.code} {exc.reason}{hint}") from None
        except ValueError as exc:  # no scheme, no host
            raise FarmError(f"manager {url}: not a URL ({exc})") from None
        except (urllib.error.URLError, OSError) as exc:
            raise FarmError(f"manager {url}: cannot be reached ({getattr(exc, 'reason', exc)})") from None

    with get(f"/api/jobs/{job_id}") as reply:
        try:
            files = json.load(reply).get("files", {})
            assert isinstance(files, dict)
        except (ValueError, AttributeError, AssertionError):
            raise FarmError(f"manager {url}: its answer is not the manager's (not its JSON)") from None
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(files):
        if Path(name).name != name or name in ("", ".", ".."):
            raise FarmError(f"manager {url}: a file name that is not one: {name!r}")

        def save(temporary: Path, name=name) -> None:
            with get(f"/jobs/{job_id}/files/{urllib.parse.quote(name)}") as reply, open(temporary, "wb") as out:
                while chunk := reply.read(1 << 20):
                    out.write(chunk)

        path = folder / name
        write_whole(path, save)
        written.append((path, path.stat().st_size))
    return written
