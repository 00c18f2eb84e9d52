"""The BVH builder: every primitive in exactly one leaf, every box containing what it should."""

from __future__ import annotations

import numpy as np
import pytest

from farm.scene import bvh, compiled


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


# Both builders: the vectorised one (small scenes) and the compiled one (big scenes), here
# on small inputs too (its code comes built: farm.scene.compiled).
BUILDERS = {"vectorised": bvh._build_vectorised, "compiled": bvh.build_compiled}


def sah_cost(tree: bvh.Bvh) -> float:
    """The tree's surface area heuristic cost, relative to its root's area."""
    area = bvh._area(tree.lower, tree.upper)
    return float((area[~tree.leaf].sum() * bvh.traversal_cost(len(tree.order))
                  + (area[tree.leaf] * tree.right[tree.leaf]).sum())
                 / area[0])


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("n", [1, 2, 3, 9, 100, 5000])
def test_random_boxes(n, builder):
    rng = np.random.default_rng(n)
    centre = rng.normal(size=(n, 3)) * [10, 1, 0.1]  # very different extents per axis
    size = rng.uniform(0, 0.5, (n, 3))
    lower, upper = centre - size, centre + size
    tree = BUILDERS[builder](lower, upper)
    check(tree, lower, upper)
    assert tree.levels <= 64


def test_the_compiled_builder_makes_as_good_a_tree_every_time():
    rng = np.random.default_rng(11)
    centre = rng.normal(size=(20000, 3)) * [10, 1, 0.1]
    size = rng.uniform(0, 0.2, (20000, 3))
    lower, upper = centre - size, centre + size
    compiled, again = bvh.build_compiled(lower, upper), bvh.build_compiled(lower, upper)
    assert all(np.array_equal(a, b) for a, b in zip(vars(compiled).values(), vars(again).values()))  # same tree
    assert sah_cost(compiled) <= 1.02 * sah_cost(bvh._build_vectorised(lower, upper))
    assert bvh.build(lower[:100], upper[:100]).levels == bvh._build_vectorised(lower[:100], upper[:100]).levels


@pytest.mark.parametrize("n", [3, 9, 5000])
def test_two_threads_build_the_tree_one_thread_builds(n, monkeypatch):
    """The root's subtrees on two threads: the same splits and leaves, so the same wide tree
    (binary ids differ; the wide tree does not keep them). Small inputs, the threshold lowered."""
    monkeypatch.setattr(bvh, "PARALLEL_MIN_PRIMITIVES", 2)
    rng = np.random.default_rng(n)
    centre = rng.normal(size=(n, 3)) * [10, 1, 0.1]
    size = rng.uniform(0, 0.3, (n, 3))
    lower, upper = centre - size, centre + size
    one, two = bvh.build_compiled(lower, upper, threads=1), bvh.build_compiled(lower, upper, threads=2)
    check(two, lower, upper)
    assert np.array_equal(one.order, two.order) and one.levels == two.levels and len(one.leaf) == len(two.leaf)
    assert sah_cost(one) == pytest.approx(sah_cost(two), rel=1e-12)  # the same nodes, summed in another order
    wide_one, wide_two = bvh.collapse(one), bvh.collapse(two)
    assert all(np.array_equal(a, b) for a, b in zip(vars(wide_one).values(), vars(wide_two).values()))


def test_two_threads_with_a_root_leaf_build_the_one_leaf(monkeypatch):
    monkeypatch.setattr(bvh, "PARALLEL_MIN_PRIMITIVES", 2)
    lower, upper = np.zeros((2, 3)), np.ones((2, 3))  # no more than a leaf holds
    tree = bvh.build_compiled(lower, upper, threads=2)
    assert len(tree.leaf) == 1 and tree.leaf[0] and tree.right[0] == 2 and tree.levels == 1


@pytest.mark.parametrize("builder", BUILDERS)
def test_identical_boxes_still_split_into_small_leaves(builder):
    lower = np.zeros((1000, 3))
    upper = np.ones((1000, 3))
    tree = BUILDERS[builder](lower, upper)
    check(tree, lower, upper)
    assert tree.levels <= 12  # halving: log2(1000 / MAX_LEAF_SIZE) + a few


def test_no_primitives_is_one_empty_leaf():
    tree = bvh.build(np.zeros((0, 3)), np.zeros((0, 3)))
    assert len(tree.leaf) == 1 and tree.leaf[0] and tree.right[0] == 0


@pytest.mark.parametrize("builder", BUILDERS)
def test_surface_area_heuristic_separates_two_clusters_first(builder):
    rng = np.random.default_rng(0)
    left = rng.uniform(0, 1, (50, 3))
    right = rng.uniform(0, 1, (50, 3)) + [100, 0, 0]
    centres = np.concatenate([left, right])
    tree = BUILDERS[builder](centres - 0.01, centres + 0.01)
    a, b = tree.left[0], tree.right[0]
    assert {round(tree.upper[a][0]), round(tree.upper[b][0])} == {1, 101}


def check_wide(wide: bvh.WideBvh, tree: bvh.Bvh, lower: np.ndarray, upper: np.ndarray) -> None:
    """Every leaf of the binary tree reached exactly once from the root, every child's box
    holding its primitives, children after their parent, and the stack bound exact."""
    n = len(lower)
    seen = np.zeros(n, int)
    deepest = 0
    walk = [(0, 0)]  # (wide node, entries left on the stack above it)
    while walk:
        node, held = walk.pop()
        valid = wide.count[node] != 0
        assert 1 <= valid.sum() <= bvh.WIDTH
        deepest = max(deepest, held + int(valid.sum()))
        for lane in np.flatnonzero(valid):
            box_lo, box_hi = wide.lower[node, lane], wide.upper[node, lane]
            if wide.count[node, lane] < 0:
                child = wide.child[node, lane]
                assert child > node
                assert (wide.lower[child][wide.count[child] != 0] >= box_lo).all()
                assert (wide.upper[child][wide.count[child] != 0] <= box_hi).all()
                walk.append((child, held + int(valid.sum()) - 1))
            else:
                first, count = wide.child[node, lane], wide.count[node, lane]
                prims = tree.order[first : first + count]
                seen[prims] += 1
                assert (lower[prims] >= box_lo).all() and (upper[prims] <= box_hi).all()
    assert (seen == 1).all()
    assert wide.stack == deepest


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("n", [1, 2, 3, 9, 100, 5000])
def test_wide_tree_reaches_every_primitive_once(n, builder):
    rng = np.random.default_rng(n)
    centre = rng.normal(size=(n, 3)) * [10, 1, 0.1]
    size = rng.uniform(0, 0.5, (n, 3))
    lower, upper = (centre - size).astype(np.float32), (centre + size).astype(np.float32)
    tree = BUILDERS[builder](lower, upper)
    wide = bvh.collapse(tree)
    check_wide(wide, tree, lower, upper)
    if n >= 100:  # up to eight children a node: a third as many nodes as the binary tree's interior
        assert len(wide.child) * 3 < (~tree.leaf).sum()
        assert (wide.count != 0).sum() >= 4 * len(wide.child)


def test_wide_tree_of_no_primitives_has_nothing_to_visit():
    wide = bvh.collapse(bvh.build(np.zeros((0, 3)), np.zeros((0, 3))))
    assert len(wide.child) == 1 and (wide.count == 0).all()


def test_a_render_process_warms_the_compiled_builder_up(monkeypatch, caplog):
    """FARM_BVH_WARMUP: a render process starting loads the compiled builder on a thread of
    its own (as farm/worker/process.py starts it), so a big scene's build does not wait."""
    import logging
    import threading

    from farm import defaults
    from farm.worker import process

    monkeypatch.setattr(defaults, "BVH_WARMUP", 1)
    with caplog.at_level(logging.INFO, logger="farm.worker.process"):
        process._open_device_in_child()
        for thread in [t for t in threading.enumerate() if t.name == "bvh-warm-up"]:
            thread.join(timeout=120)  # done already where an earlier test compiled it
        assert "compiled BVH builder and OBJ reader ready" in caplog.text
    assert all(loop.signatures for loop in compiled.loaded().values()) and len(compiled.loaded()) == 9

