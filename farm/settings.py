"""Where a setting's value comes from, and the check of every one: a FARM_* environment
variable, else the settings file, else its default in farm.defaults.

The settings file is TOML (the Python ecosystem's format, read by the standard library's
tomllib), one key per setting, the variable's name without FARM_ and in lower case:

    broker_url = "redis://:password@render-redis:6379/0"
    secret_file = "/etc/farm/secret"
    bucket_size = 32
    cache_size = "50G"

It is the file FARM_SETTINGS names, else `$XDG_CONFIG_HOME/farm/farm.toml` (~/.config/...),
else /etc/farm/farm.toml: the first that exists; FARM_SETTINGS=none reads none. A worker
and a client on one machine read the same file, as they read the same environment.

Nothing here raises while farm.defaults is imported (farm/__init__ imports the app, which
imports the defaults, before any entry point could catch an error): a value that is bad
keeps its default and is named by `check()`, which every entry point calls first.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from pathlib import Path

PREFIX = "FARM_"
# Names the tests (and only they) read: not settings, never reported as unknown.
TEST_PREFIX = "FARM_TEST_"

# The settings, by variable name: what a value must be (for `farm settings` and messages).
KNOWN: dict[str, str] = {}
# The value of each setting read through `setting`, for `farm settings`.
VALUES: dict[str, object] = {}
# "FARM_X='value' is not ...": the values that are bad, for check().
_BAD: list[str] = []


def _settings_file() -> tuple[Path | None, dict]:
    """The settings file and its table; a file that cannot be read is named by check()."""
    named = os.environ.get("FARM_SETTINGS", "").strip()
    if named.lower() == "none":
        return None, {}
    if named:
        candidates = [Path(named).expanduser()]
    else:
        config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        candidates = [Path(config) / "farm" / "farm.toml", Path("/etc/farm/farm.toml")]
    for path in candidates:
        if named or path.is_file():
            try:
                with open(path, "rb") as file:
                    return path, tomllib.load(file)
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                _BAD.append(f"settings file {path}: {getattr(exc, 'strerror', None) or exc}")
                return path, {}
    return None, {}


FILE, _TABLE = _settings_file()
KNOWN["FARM_SETTINGS"] = "the settings file (TOML), or none"


def _origin(name: str) -> tuple[object, str] | None:
    """The raw value of a setting and where it was given, or None for its default."""
    value = os.environ.get(name)
    if value is not None and value.strip():
        return value.strip(), f"{name}={value!r}"
    key = name.removeprefix(PREFIX).lower()
    if key in _TABLE:
        return _TABLE[key], f"{key} = {_TABLE[key]!r} in {FILE}"
    return None


def source(name: str) -> str:
    """Where a setting's value comes from: the environment, the file, or the default."""
    given = _origin(name)
    if given is None:
        return "default"
    return "environment" if os.environ.get(name, "").strip() else str(FILE)


def setting(name: str, default, parse, what: str, least=None, most=None):
    """The value of setting `name`: parsed by `parse`, within [least, most] where given."""
    KNOWN[name] = what
    VALUES[name] = default
    given = _origin(name)
    if given is None:
        return default
    raw, shown = given
    try:
        value = parse(raw)
    except (ValueError, TypeError, OverflowError):
        _BAD.append(f"{shown} is not {what}")
        return default
    if least is not None and value < least:
        _BAD.append(f"{shown} is below the least allowed, {least}")
        return default
    if most is not None and value > most:
        _BAD.append(f"{shown} is over the most allowed, {most}")
        return default
    VALUES[name] = value
    return value


def text(value) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def whole(value) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError("not a whole number")
    return int(value)


def number(value) -> float:
    if isinstance(value, bool):
        raise TypeError("not a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def size(value) -> int:
    """A size in bytes, with an optional K, M or G suffix (powers of 1024): `20G`."""
    if isinstance(value, bool):
        raise TypeError("not a size")
    if isinstance(value, int):
        return value
    value = str(value).strip().upper().removesuffix("B")
    scale = 1024 ** ("KMG".index(value[-1]) + 1) if value[-1:] in ("K", "M", "G") else 1
    return int(number(value[:-1] if scale > 1 else value) * scale)


def flag(value) -> bool:
    if isinstance(value, bool):
        return value
    words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    word = str(value).strip().lower()
    if word not in words:
        raise ValueError(value)
    return words[word]


def name(value) -> str:
    """A name that goes into Redis keys and queue names: letters, digits, -, _ and ."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text(value)):
        raise ValueError(value)
    return value


def one_of(*choices: str):
    def parse(value) -> str:
        if text(value) not in choices:
            raise ValueError(value)
        return value

    return parse


def known(name: str, what: str) -> None:
    """A setting read elsewhere (a secret, a plugin's switch): not unknown to check()."""
    KNOWN[name] = what


def value(name: str) -> str:
    """A text setting read outside farm.defaults (the secret's), from the environment or file."""
    given = _origin(name)
    return "" if given is None else str(given[0])


def _unknown() -> tuple[list[str], list[str]]:
    """(bad, warnings): a key of the settings file that is no setting is bad (the file is
    farm's own); an unknown FARM_* variable is a warning (a shell may hold other FARM_ names)."""
    def hint(name: str, names) -> str:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
        return f" (did you mean {close[0]}?)" if close else ""

    keys = {name.removeprefix(PREFIX).lower() for name in KNOWN}
    bad = [f"{key} in {FILE} is not a farm setting{hint(key, keys)}" for key in _TABLE if key not in keys]
    warnings = [f"{name} is not a farm setting{hint(name, KNOWN)}" for name in sorted(os.environ)
                if name.startswith(PREFIX) and not name.startswith(TEST_PREFIX) and name not in KNOWN]
    return bad, warnings


def check() -> list[str]:
    """Raise farm.exceptions.SettingsError naming every bad value, a line each; return the
    warnings (unknown FARM_* variables) for the caller to print."""
    bad, warnings = _unknown()
    if _BAD or bad:
        from farm.exceptions import SettingsError

        raise SettingsError("\n".join(_BAD + bad))
    return warnings


def lines(redacted) -> list[str]:
    """`farm settings`: every setting, its value and where it came from; secrets hidden, the
    broker URL's password by `redacted` (farm.protocol.broker's)."""
    rows = [f"settings file: {FILE or 'none'}"]
    for name in sorted(KNOWN):
        if name in VALUES and name not in ("FARM_SECRET", "FARM_SENTINEL_PASSWORD", "FARM_WATCH_TOKEN",
                                                 "FARM_MANAGER_TOKEN"):
            shown = VALUES[name]
            shown = redacted(shown) if name == "FARM_BROKER_URL" and shown else shown
        else:  # a secret, or a setting read where it is used
            shown = "(set)" if value(name) else "(not set)"
        rows.append(f"{name}={shown}  [{source(name)}]  {KNOWN[name]}")
    return rows
