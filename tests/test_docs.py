"""The README and docs/ as a user meets them: the README holds what a user needs first (the
two commands, every option of `submit` and every command of `farm`, a short path to a farm
of many machines) and sends the rest to docs/; every link and anchor resolves; every setting
is documented; CI runs the README's own test command. Issue 26 item 13."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.files import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def text(path) -> str:
    return path.read_text()


def headings(path) -> list[str]:
    return [line.lstrip("#").strip() for line in text(path).splitlines() if re.match(r"#{1,6} ", line)]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_the_readme_holds_what_a_user_needs_first():
    """Before: 68 KB, with ACL, Sentinel and TLS before the options of `submit`."""
    assert len(text(README).encode()) < 25_000
    order = [heading for heading in headings(README) if not heading.startswith("farm")]
    assert order[:2] == ["The two commands", "`submit`"], order
    assert "A farm of many machines" in order and order[-1] == "More", order
    for detail in ("ACL SETUSER", "sentinel://", "rediss://", "kustomize"):  # in docs/deploy.md
        assert detail not in text(README), detail
    for page in DOCS:
        assert f"(docs/{page.name})" in text(README), f"the README's index lacks docs/{page.name}"


def _submit_options() -> set[str]:
    from farm.client.cli import submit_parser

    return {option for action in submit_parser()._actions for option in action.option_strings
            if option.startswith("--") and option not in ("--help", "--version")}


def test_every_option_of_submit_and_command_of_farm_is_in_the_readme():
    readme = text(README)
    missing = sorted(option for option in _submit_options() if not re.search(rf"[` ]{option}\b", readme))
    assert not missing, f"submit options the README's table lacks: {missing}"
    usage = subprocess.run([sys.executable, "-m", "farm.client.cli", "--help"], capture_output=True, text=True,
                           timeout=60).stdout
    commands = re.search(r"\{([a-z,]+)\}", usage).group(1).split(",")
    assert "settings" in commands
    missing = [command for command in commands if f"farm {command}" not in readme and command != "submit"]
    assert not missing, f"farm commands the README lacks: {missing}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda page: page.name)
def test_every_link_and_anchor_resolves(page):
    for target in LINK.findall(text(page)):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} names no file"
        if fragment:
            assert fragment in {anchor(heading) for heading in headings(linked)}, f"{page.name}: {target}"


def test_every_setting_is_documented():
    from farm import settings

    documented = text(ROOT / "docs" / "settings.md")
    missing = sorted(name for name in settings.KNOWN if f"`{name}`" not in documented)
    assert not missing, f"settings docs/settings.md lacks: {missing}"


def test_ci_runs_the_readmes_test_command():
    """`.ci/run` calls the README's test command, word for word after the venv's creation."""
    blocks = re.findall(r"```sh\n(.*?)\n```", text(README), re.S)
    (test_command,) = [block for block in blocks if "pytest" in block and "pip install" in block]
    assert test_command.replace("-q ", "") in text(ROOT / ".ci" / "run").replace("-q ", "")
