"""The bottom levels a render process keeps between the frames of a shot
(farm.scene.instances): a later frame whose shapes move rigidly builds only its top level."""

from __future__ import annotations

from farm.scene.instances import Combined, Geometry, combine


class Library:
    """Bottom levels a render process keeps between frames, by what they are made of (a
    level's shapes less their placement, with materials and file digests): those the last
    `keep` scenes used."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self.levels: dict = {}
        self.combined: dict = {}
        self.recent: list[set] = []
        self.built = 0  # levels built (not found here), for tests and benches

    def level(self, key, build) -> Geometry:
        if key is None:
            self.built += 1
            return build()
        if key not in self.levels:
            self.levels[key] = build()
            self.built += 1
        return self.levels[key]

    def combine(self, keys: tuple, levels: list[Geometry]) -> Combined:
        if any(key is None for key in keys):
            return combine(levels)
        if keys not in self.combined:
            self.combined[keys] = combine(levels)
        return self.combined[keys]

    def used(self, keys: list, combined) -> None:
        """The scene just packed used levels `keys` (and their combination `combined`):
        forget what the last `keep` scenes did not use."""
        self.recent = (self.recent + [set(keys) | {combined}])[-self.keep:] if self.keep else []
        live = set().union(*self.recent)
        for table in (self.levels, self.combined):
            for key in [k for k in table if k not in live]:
                del table[key]
