"""Who imports what: the client never loads the worker, the worker never loads the client,
the protocol both speak loads neither, and the product never loads the tools.

Each side is imported in a fresh interpreter, so nothing another test imported counts.
The structural checks of issue 25 read farm/ as source (with `ast`): module length,
import circles, imports of the tools, and the code that publishes bucket tasks.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FARM = ROOT / "farm"

WORKER = ("farm.worker", "farm.tasks", "farm.scene.pack", "farm.scene.bvh", "pyopencl")
CLIENT = ("farm.client",)
SCENE_LOADER = ("farm.scene.load", "farm.scene.gltf")
TOOLS = ("farm.tools",)


def _loaded_after(code: str, cwd: Path | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (in `cwd`)."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120,
                         cwd=cwd)
    return set(json.loads(out.stdout.splitlines()[-1]))


def _matching(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("code", [
    "import farm.client.cli as cli; cli.submit_parser()",
    "import farm.client.run, farm.client.local, farm.client.film, farm.scene.load",
])
def test_the_client_loads_no_worker_code_and_no_opencl(code):
    loaded = _loaded_after(code)
    assert _matching(loaded, WORKER + TOOLS) == []
    assert "celery" in loaded or "farm.client.cli" in loaded  # the probe did import something


# Every `farm` subcommand, with arguments that end it at once without a broker (the probe
# removes FARM_BROKER_URL): what it imported on the way is the point, not the error line.
FARM_COMMANDS = [
    pytest.param(["submit", "missing.json", "-o", "x.png"], WORKER + TOOLS, id="submit"),
    pytest.param(["collect", "JOB", "-o", "x.png"], WORKER + TOOLS, id="collect"),
    pytest.param(["cancel", "JOB"], WORKER + TOOLS, id="cancel"),
    pytest.param(["status"], WORKER + TOOLS, id="status"),
    pytest.param(["secret"], WORKER + TOOLS, id="secret"),
    pytest.param(["watch", "JOB"], WORKER + TOOLS, id="watch"),
    pytest.param(["report", "missing.json", "-o", "x.html"], WORKER + TOOLS, id="report"),
    pytest.param(["manager", "--output-dir", "."], WORKER + TOOLS, id="manager"),
    pytest.param(["jobs"], WORKER + TOOLS, id="jobs"),
    pytest.param(["wait", "JOB"], WORKER + TOOLS, id="wait"),
    pytest.param(["fetch", "JOB", "-o", "out"], WORKER + TOOLS, id="fetch"),
    pytest.param(["pause", "JOB"], WORKER + TOOLS, id="pause"),
    pytest.param(["priority", "JOB", "60"], WORKER + TOOLS, id="priority"),
    pytest.param(["check"], WORKER + TOOLS, id="check"),
    # `farm devices` lists this machine's OpenCL devices: it loads pyopencl and
    # farm.worker.device by design, so only the tools are ruled out.
    pytest.param(["devices"], TOOLS, id="devices"),
    # The tools' commands load their tool (farm.tools.*); `--help` ends them once the tool
    # has added its arguments, and the client process holds no worker code by then.
    pytest.param(["bench", "--help"], WORKER, id="bench"),
    pytest.param(["chaos", "--help"], WORKER, id="chaos"),
]


@pytest.mark.parametrize(("argv", "forbidden"), FARM_COMMANDS)
def test_each_farm_command_loads_no_worker_code_and_no_opencl(argv, forbidden, monkeypatch, tmp_path):
    monkeypatch.delenv("FARM_BROKER_URL", raising=False)
    loaded = _loaded_after(
        "import os; os.environ.pop('FARM_BROKER_URL', None)\n"
        "import farm.client.cli as cli\n"
        f"try:\n    cli.main({argv!r})\nexcept SystemExit:\n    pass",
        cwd=tmp_path,
    )
    assert "farm.client.cli" in loaded
    assert _matching(loaded, forbidden) == []


def test_the_worker_loads_no_client_code_no_scene_loader_and_no_tools():
    """What `celery -A farm worker` imports: the app, whose `include` names farm.tasks."""
    loaded = _loaded_after("import farm; farm.app.loader.import_default_modules()")
    assert "farm.tasks" in loaded and "farm.worker.process" in loaded
    assert _matching(loaded, CLIENT + SCENE_LOADER + TOOLS) == []


def test_the_protocol_loads_neither_side():
    modules = ("assets", "broker", "events", "jobs", "leases", "queue", "registry", "tiles")
    loaded = _loaded_after("; ".join(f"import farm.protocol.{m}" for m in modules))
    assert _matching(loaded, WORKER + CLIENT + TOOLS) == []


def test_the_client_sends_tasks_by_name():
    """The client's queue names the task; farm/tasks.py registers that name on the worker."""
    from farm.app import app
    from farm.protocol.queue import TASK_NAME

    app.loader.import_default_modules()
    assert TASK_NAME in app.tasks


def test_a_worker_without_faults_asked_for_loads_no_fault_injection(monkeypatch):
    monkeypatch.delenv("FARM_FAULTS", raising=False)
    loaded = _loaded_after("import os; os.environ.pop('FARM_FAULTS', None); import farm.worker.process")
    assert "farm.tools.faults" not in loaded
    loaded = _loaded_after("import os; os.environ['FARM_FAULTS'] = 'slow=2'; import farm.worker.process")
    assert "farm.tools.faults" in loaded, json.dumps(_matching(loaded, TOOLS))


# -- farm/ read as source ------------------------------------------------------------------

MAX_MODULE_LINES = 400  # one noun per module, read in one sitting: past this a module holds more than one


def _modules() -> dict[str, Path]:
    """Every Python module of farm/ by its dotted name (a package by its __init__.py)."""
    modules = {}
    for path in sorted(FARM.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _where(module: str) -> str:
    return MODULES[module].relative_to(ROOT).as_posix()


def _called(call: ast.Call) -> str:
    """The name a call calls: `f(...)` and `x.f(...)` both give "f"."""
    return getattr(call.func, "attr", None) or getattr(call.func, "id", None) or ""


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported module, line) for each import of farm code in `module`, at module level
    or lazy (in a function), and each importlib.import_module("farm...") string.
    `from farm.x import y` imports farm.x.y where that is a module, else farm.x."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per dot after the first
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                found.append((f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno))
        elif (isinstance(node, ast.Call) and _called(node) in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, node.lineno))
    return [(name, line) for name, line in found if name == "farm" or name.startswith("farm.")]


def _import_graph() -> dict[str, dict[str, int]]:
    """module -> {module of farm it imports: the line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for module in MODULES:
        edges = graph.setdefault(module, {})
        for name, line in _imports(module):
            if name in MODULES and name != module:
                edges[name] = min(line, edges.get(name, line))
    return graph


def _circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The shortest circle through each module that sits on one, one per distinct circle."""
    circles, seen = [], set()
    for start in sorted(graph):
        before: dict[str, str] = {}
        todo = deque([start])
        while todo and start not in before:
            module = todo.popleft()
            for name in sorted(graph[module]):
                if name not in before:
                    before[name] = module
                    todo.append(name)
        if start not in before:
            continue
        back = [before[start]]  # walked back from the module that imports `start`
        while back[-1] != start:
            back.append(before[back[-1]])
        circle = back[::-1]  # start, ..., the module that imports start
        key = frozenset(circle)
        if key not in seen:
            seen.add(key)
            circles.append(circle)
    return circles


def test_no_module_of_farm_is_longer_than_the_limit():
    lengths = {_where(m): len(path.read_text().splitlines()) for m, path in MODULES.items()}
    too_long = {where: lines for where, lines in sorted(lengths.items()) if lines > MAX_MODULE_LINES}
    assert too_long == {}, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_farm_has_no_import_circle():
    """Lazy imports count: an import inside a function that closes a circle is a circle."""
    graph = _import_graph()
    assert graph["farm.client.cli"], "the scan found no import in farm/client/cli.py"
    lines = []
    for circle in _circles(graph):
        hops = [f"{a} ({_where(a)}:{graph[a][b]})" for a, b in zip(circle, circle[1:] + circle[:1])]
        lines.append(" -> ".join(hops + [circle[0]]))
    assert lines == [], "import circles:\n" + "\n".join(lines)


def test_the_product_imports_no_tools():
    """farm/{client,protocol,worker,scene} and the top-level modules, lazy imports and
    importlib.import_module strings included: the tools plug in from outside."""
    top_level = [m for m, path in MODULES.items() if path.parent == FARM]  # farm/*.py
    product = top_level + [m for m in MODULES if m.split(".")[1:2] in (["client"], ["protocol"], ["worker"], ["scene"])]
    assert "farm.client.cli" in product and "farm.defaults" in product and "farm" in product
    found = [f"{_where(m)}:{line} imports {name}" for m in product for name, line in _imports(m)
             if name == "farm.tools" or name.startswith("farm.tools.")]
    assert found == [], "the product imports the tools:\n" + "\n".join(found)


# The only code that publishes bucket tasks: the client's send window and the recovery
# (what a worker or a client sends again), and the BucketQueue's own internals.
SENDERS = {"farm/client/run.py:JobRun.send_more", "farm/protocol/recovery.py:Recovery.resend"}
QUEUE_INTERNALS = {f"farm/protocol/queue.py:BucketQueue.{name}" for name in ("send", "_send_batch")}
PUBLISHING = ("send_task", "apply_async", "delay", "_messages")  # _messages: the queue's, made to LPUSH


def _publishes(call: ast.Call) -> bool:
    """A call that publishes bucket tasks: Celery's send_task / apply_async / delay, the
    queue's _messages, or `.send(` on a BucketQueue (a receiver named ...queue, or
    BucketQueue(...) itself). Events (send_event) are not tasks."""
    name = _called(call)
    if name in PUBLISHING:
        return True
    if name != "send" or not isinstance(call.func, ast.Attribute):
        return False
    receiver = call.func.value.func if isinstance(call.func.value, ast.Call) else call.func.value
    return (getattr(receiver, "attr", None) or getattr(receiver, "id", None) or "").lower().endswith("queue")


class _PublishSites(ast.NodeVisitor):
    """(file:Class.function, line) of each publishing call in a module."""

    def __init__(self, where: str):
        self.where, self.scope, self.sites = where, [], []

    def _enter(self, node) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _enter

    def visit_Call(self, node: ast.Call) -> None:
        if _publishes(node):
            self.sites.append((f"{self.where}:{'.'.join(self.scope) or '<module>'}", node.lineno))
        self.generic_visit(node)


def test_every_publish_of_a_bucket_goes_through_the_send_window_or_the_recovery():
    sites = []
    for module, path in MODULES.items():
        visitor = _PublishSites(_where(module))
        visitor.visit(ast.parse(path.read_text(), str(path)))
        sites += visitor.sites
    functions = {function for function, _ in sites}
    listing = "\n".join(f"{function} (line {line})" for function, line in sorted(sites))
    assert functions & QUEUE_INTERNALS, f"the scan found no publish in the BucketQueue:\n{listing}"
    assert functions - QUEUE_INTERNALS == SENDERS, f"bucket tasks published from:\n{listing}"
