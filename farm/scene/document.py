"""A value of the scene document together with its path (`shapes[2].radius`), so every
error names where in the file it is."""

from __future__ import annotations

import math
from typing import Any

from farm.exceptions import SceneError


class Node:
    """A value in the document together with its path, for error messages."""

    def __init__(self, value: Any, path: str):
        self.value = value
        self.path = path

    def fail(self, message: str):
        raise SceneError(f"{self.path}: {message}")

    def child(self, key: str | int) -> Node:
        if isinstance(key, int):
            return Node(self.value[key], f"{self.path}[{key}]")
        if key not in self.value:
            self.fail(f"missing field {key!r}")
        return Node(self.value[key], f"{self.path}.{key}")

    def expect_keys(self, required=(), optional=()):
        if not isinstance(self.value, dict):
            self.fail(f"expected an object, got {kind_of(self.value)}")
        allowed = set(required) | set(optional)
        missing = [key for key in required if key not in self.value]
        unknown = [key for key in self.value if key not in allowed]
        problems = []
        if missing:
            problems.append(f"missing field{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}")
        if unknown:  # a misspelt key is often the missing one: say both at once
            problems.append(f"unknown field{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))} "
                            f"(allowed: {', '.join(sorted(allowed))})")
        if problems:
            self.fail("; ".join(problems))

    def named(self, what: str) -> list[tuple[str, Node]]:
        """The entries of an object mapping names to objects (materials, textures)."""
        if not isinstance(self.value, dict):
            self.fail(f"expected an object of named {what}s, got {kind_of(self.value)}")
        entries = [(name, self.child(name)) for name in self.value]
        for _, child in entries:
            if not isinstance(child.value, dict):
                child.fail(f"expected a {what} object, got {kind_of(child.value)}")
        return entries

    def items(self) -> list[Node]:
        if not isinstance(self.value, list):
            self.fail(f"expected a list, got {kind_of(self.value)}")
        return [self.child(i) for i in range(len(self.value))]

    def list_of(self, count: int) -> list[Node]:
        items = self.items()
        if len(items) != count:
            self.fail(f"expected a list of {count} values, got {len(items)}")
        return items

    def number(self, low: float | None = None, high: float | None = None) -> float:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"expected a number, got {kind_of(value)}")
        value = float(value)
        if not math.isfinite(value):
            self.fail("expected a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{value} is out of range [{low}, {high if high is not None else 'inf'}]")
        return value

    def integer(self, low: int | None = None, high: int | None = None, what: str = "value") -> int:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected an integer, got {kind_of(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{what} {value} is out of range [{low}, {high}]")
        return value

    def string(self) -> str:
        if not isinstance(self.value, str):
            self.fail(f"expected a string, got {kind_of(self.value)}")
        return self.value

    def choice(self, options: tuple[str, ...]) -> str:
        value = self.string()
        if value not in options:
            self.fail(f"{value!r} is not one of {', '.join(options)}")
        return value

    def vec3(self, low: float | None = None, high: float | None = None):
        return tuple(item.number(low, high) for item in self.list_of(3))

    def colour(self, low: float | None = None, high: float | None = None):
        """An RGB triple, or one number for a grey (as material colours take it)."""
        if isinstance(self.value, list):
            return self.vec3(low, high)
        level = self.number(low, high)
        return (level, level, level)

    def byte_range(self) -> tuple[int, int]:
        """(offset, length) of bytes inside a file."""
        offset, length = (item.integer(0, 2**53) for item in self.list_of(2))
        return offset, length

    def optional(self, key: str, read):
        """`read(child)` of the field `key`, or None without it."""
        return read(self.child(key)) if key in self.value else None

    def vec2(self):
        return tuple(item.number() for item in self.list_of(2))

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, got {kind_of(self.value)}")
        return self.value

    def relative_file(self, suffixes: tuple[str, ...] | None) -> str:
        """A file name relative to the scene file's folder (`load_scene` has made it so: here,
        on a worker as on the client, anything else is refused)."""
        name = self.string()
        parts = name.replace("\\", "/").split("/")
        if not name or name.startswith(("/", "\\")) or ":" in parts[0] or any(p in ("..", ".", "") for p in parts):
            self.fail(f"{name!r}: files must be named relative to the scene's folder, inside it")
        if suffixes and not name.lower().endswith(suffixes):
            self.fail(f"{name!r}: unsupported file type (expected {', '.join(suffixes)})")
        return name


def kind_of(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
