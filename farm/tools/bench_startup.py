"""`farm bench --mesh N --on-farm` (or `--scene FILE --on-farm`): how long a big scene takes
to start on a warm farm, and how much memory it takes, as a user meets it.

The mesh is written as a .glb (positions, normals, indices); a --scene (a USD stage, a
glTF file, a JSON scene) is submitted as it is. `submit` runs as a process of its own
against a local farm of --workers warm workers, so its wall time and peak memory are its
own. Each round renders the scene anew for every worker (the .glb with another seed, a
--scene at another film height, each a scene of another digest), so every worker prepares
it again (files stay in the workers' asset caches after the first round; the workers start
with an empty cache folder, so an earlier bench's packed scenes, of these same digests, do
not serve them: they did, and its first tiles read 0.15 s). The
workers' start-up is the time from the client's sending of the job to its first tile
(fetching the files, building the scene, uploading it, one small bucket); the render
processes' peak memory is read from the kernel (VmHWM), reset before each round.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from farm import defaults
from farm.tools.bench_scenes import bumpy_sphere


def write_glb(path: Path, triangles: int) -> int:
    """farm bench --mesh's bumpy sphere of about `triangles` triangles as a .glb; returns
    its triangle count."""
    points, normals, faces = bumpy_sphere(triangles)
    points, normals, faces = points.astype(np.float32), normals.astype(np.float32), faces.astype(np.uint32)
    parts = [points.tobytes(), normals.tobytes(), faces.tobytes()]
    offsets = np.cumsum([0] + [len(p) for p in parts])
    document = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2}]}],
        "buffers": [{"byteLength": int(offsets[-1])}],
        "bufferViews": [{"buffer": 0, "byteOffset": int(offsets[i]), "byteLength": len(parts[i])} for i in range(3)],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(points), "type": "VEC3",
             "min": points.min(axis=0).tolist(), "max": points.max(axis=0).tolist()},
            {"bufferView": 1, "componentType": 5126, "count": len(normals), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5125, "count": faces.size, "type": "SCALAR"},
        ],
    }
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    binary = b"".join(parts)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)
    return len(faces)


def _render_processes(local) -> list[psutil.Process]:
    found = []
    for worker in local.workers:
        try:
            found += psutil.Process(worker.process.pid).children(recursive=True)
        except psutil.Error:
            continue
    return found


def _peak_memory(process: psutil.Process) -> int:
    """The process's peak resident memory in bytes (VmHWM)."""
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak(process: psutil.Process) -> None:
    try:  # "5" resets the peak resident set size (Linux 4.0 and later)
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")
    except OSError:
        pass


def run(args) -> int:
    from farm.app import app
    from farm.client.local import LocalFarm

    workers = args.workers or 2
    submit = Path(sys.executable).with_name("submit")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if args.mesh:
            triangles = write_glb(folder / "mesh.glb", args.mesh)
            size = (folder / "mesh.glb").stat().st_size
            what = f"a {triangles:,}-triangle glTF ({size / 2**20:.0f} MiB)"
        else:
            what = f"{args.scene} ({Path(args.scene).stat().st_size / 2**20:.1f} MiB)"
        # the workers' own cache folder, empty: no packed scene or file of an earlier bench
        # (whose rounds had these digests) serves them, as on a machine new to the scene
        with LocalFarm(workers, env={"FARM_CACHE_DIR": str(folder / "workers-cache")}) as local:
            app.conf.broker_url = local.broker_url
            local.wait_ready(app, timeout=max(defaults.WORKER_START_TIMEOUT, 3.0 * workers))
            print(f"startup: {what} on {workers} warm workers, 32 pixels wide at 1 spp in 16-pixel buckets")
            for round_number in range(args.repeat):
                if args.mesh:
                    scene = folder / f"round{round_number}.json"
                    scene.write_text(json.dumps({"version": 1, "include": [{"file": "mesh.glb"}], "seed": round_number,
                                                 "film": {"width": 32, "height": 32, "spp": 1}}))
                    film = []
                else:  # another film height, another scene digest
                    scene, film = Path(args.scene), ["--resolution", f"32x{32 + round_number}", "--spp", "1"]
                processes = _render_processes(local)
                for process in processes:
                    _reset_peak(process)
                report = folder / f"report{round_number}.json"
                started = time.perf_counter()
                client = psutil.Popen([str(submit), str(scene), "-o", str(folder / "out.exr"), "--broker",
                                       local.broker_url, "--bucket-size", "16", "--report", str(report), *film],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
                peak_client = 0
                while client.poll() is None:
                    try:
                        peak_client = max(peak_client, client.memory_info().rss)
                    except psutil.Error:
                        pass
                    time.sleep(0.02)
                wall = time.perf_counter() - started
                if client.returncode != 0:
                    print(f"submit failed: {client.stderr.read().decode().strip()}")
                    return 1
                record = json.loads(report.read_text())
                first = min(bucket["arrived"] for bucket in record["buckets"])
                peak_worker = max((_peak_memory(p) for p in processes), default=0)
                print(f"round {round_number + 1}: submit {wall:.2f}s in all, peak memory {peak_client / 2**20:.0f} MiB "
                      f"(sampled); workers: first tile {first:.2f}s after the job was sent, frame "
                      f"{record['wall_seconds']:.2f}s; render process peak memory {peak_worker / 2**20:.0f} MiB "
                      f"(largest of {len(processes)})")
    return 0
