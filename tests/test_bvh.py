"""The BVH builder: every primitive in exactly one leaf, every box containing what it should."""

from __future__ import annotations

import numpy as np
import pytest

from farm.scene import bvh


def check(tree: bvh.Bvh, lower: np.ndarray, upper: np.ndarray) -> None:
    n = len(lower)
    seen = np.zeros(n, int)
    for node in np.flatnonzero(tree.leaf):
        prims = tree.order[tree.left[node] : tree.left[node] + tree.right[node]]
        seen[prims] += 1
        assert (lower[prims] >= tree.lower[node]).all() and (upper[prims] <= tree.upper[node]).all()
        assert len(prims) <= bvh.MAX_LEAF_SIZE
    for node in np.flatnonzero(~tree.leaf):
        for child in (tree.left[node], tree.right[node]):
            assert child > node  # children after their parent: the kernel needs no other order
            assert (tree.lower[child] >= tree.lower[node]).all() and (tree.upper[child] <= tree.upper[node]).all()
    assert (seen == 1).all()
    assert sorted(tree.order) == list(range(n))


@pytest.mark.parametrize("n", [1, 2, 3, 9, 100, 5000])
def test_random_boxes(n):
    rng = np.random.default_rng(n)
    centre = rng.normal(size=(n, 3)) * [10, 1, 0.1]  # very different extents per axis
    size = rng.uniform(0, 0.5, (n, 3))
    lower, upper = centre - size, centre + size
    tree = bvh.build(lower, upper)
    check(tree, lower, upper)
    assert tree.levels <= 64


def test_identical_boxes_still_split_into_small_leaves():
    lower = np.zeros((1000, 3))
    upper = np.ones((1000, 3))
    tree = bvh.build(lower, upper)
    check(tree, lower, upper)
    assert tree.levels <= 12  # halving: log2(1000 / MAX_LEAF_SIZE) + a few


def test_no_primitives_is_one_empty_leaf():
    tree = bvh.build(np.zeros((0, 3)), np.zeros((0, 3)))
    assert len(tree.leaf) == 1 and tree.leaf[0] and tree.right[0] == 0


def test_surface_area_heuristic_separates_two_clusters_first():
    rng = np.random.default_rng(0)
    left = rng.uniform(0, 1, (50, 3))
    right = rng.uniform(0, 1, (50, 3)) + [100, 0, 0]
    centres = np.concatenate([left, right])
    tree = bvh.build(centres - 0.01, centres + 0.01)
    a, b = tree.left[0], tree.right[0]
    assert {round(tree.upper[a][0]), round(tree.upper[b][0])} == {1, 101}
