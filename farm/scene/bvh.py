"""A bounding volume hierarchy over primitive boxes, built top-down with the surface area
heuristic over binned centroids, then collapsed to eight children a node.

Two builders of the same heuristic. Small scenes: vectorised numpy, one tree level at a
time (no compiler to start). From COMPILED_MIN_PRIMITIVES on: the textbook loop (Wald
2007, "On fast Construction of SAH-based Bounding Volume Hierarchies"; pbrt-v4's
BVHAggregate::buildRecursive), each node binning its centroids on all three axes,
sweeping the bins for the cheapest split and partitioning its slice of `order` in place,
compiled by numba: a million triangles in 1.7-1.9 s where the vectorised builder takes
9.9-10.2 s (issue 15), to a tree as good (SAH 50.29 against 50.35). Both are deterministic,
so every worker builds the same tree from the same scene.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from farm.scene.bvh_loop import collapse_slots, compiled_build_loop

BINS = 16  # candidate split planes per axis and node: 15 (fewer for nodes under 64 primitives)
# From this many primitives on the compiled builder pays for numba's start (about 1.4 s a
# process): the vectorised one takes about 10 us a primitive, the compiled one 2 us.
COMPILED_MIN_PRIMITIVES = 200_000
# From this many on, the compiled builder builds the root's two subtrees on two threads.
PARALLEL_MIN_PRIMITIVES = 200_000
LEAF_SIZE = 2  # a node this small is a leaf whatever the heuristic says
MAX_LEAF_SIZE = 8  # a node larger than this is split even if the heuristic prefers a leaf
TRAVERSAL_COST = 1.0  # cost of visiting a node, relative to one primitive test, in a small tree
# ... and in a tree of LARGE_TREE primitives or more, whose nodes come from memory rather
# than the first caches: fewer, fuller leaves. Measured on the generated meshes (the same
# bits), each scene packed both ways in one process: 2.0 against 1.0 renders 1M triangles
# 1.13-1.18x as fast (across processes, farm bench --skip-farm --scene mesh:1000000: 1.06x),
# 5,000 to 300,000 triangles 1.03-1.07x; below, 1,000 triangles 0.96x and the Cornell box
# (36) 0.89x, so small trees keep 1.0.
LARGE_TREE = 4096
LARGE_TRAVERSAL_COST = 2.0


def traversal_cost(primitives: int) -> float:
    """TRAVERSAL_COST for a tree over this many primitives."""
    return LARGE_TRAVERSAL_COST if primitives >= LARGE_TREE else TRAVERSAL_COST


@dataclass(frozen=True)
class Bvh:
    """Nodes in creation order (root first). A leaf covers order[first:first + count]."""

    lower: np.ndarray  # (nodes, 3) box minimum
    upper: np.ndarray  # (nodes, 3) box maximum
    left: np.ndarray  # interior: index of the left child; leaf: first primitive slot
    right: np.ndarray  # interior: index of the right child; leaf: primitive count
    leaf: np.ndarray  # bool
    order: np.ndarray  # primitive index of each slot
    levels: int  # depth of the tree: the longest root-to-leaf path, in nodes


def _area(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    d = np.maximum(upper - lower, 0.0)
    return 2.0 * (d[..., 0] * d[..., 1] + d[..., 1] * d[..., 2] + d[..., 2] * d[..., 0])


def build(lower: np.ndarray, upper: np.ndarray, max_leaf: int = MAX_LEAF_SIZE) -> Bvh:
    """Build over primitives with boxes [lower[i], upper[i]] (shape (n, 3)): small scenes
    with the vectorised numpy builder, from COMPILED_MIN_PRIMITIVES on with the compiled
    one. Both are deterministic, so every worker builds the same tree for the same scene.
    `max_leaf` 1 makes every leaf one primitive (a top level's leaves: one instance each)."""
    n = len(lower)
    if n == 0:  # one empty leaf: every ray misses everything
        zero = np.zeros((1, 3))
        return Bvh(zero, zero, np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, bool), np.zeros(0, np.int64), 1)
    if n < COMPILED_MIN_PRIMITIVES:
        return _build_vectorised(lower, upper, min(LEAF_SIZE, max_leaf), max_leaf)
    return build_compiled(lower, upper, max_leaf)


def build_compiled(lower: np.ndarray, upper: np.ndarray, max_leaf: int = MAX_LEAF_SIZE,
                   threads: int | None = None) -> Bvh:
    """The compiled builder: one node at a time, in a loop numba compiles. From
    PARALLEL_MIN_PRIMITIVES on, the root is split first and its two subtrees built on two
    threads (the loop lets go of the GIL) into arrays of their own, then laid after it: the
    same tree as one thread builds (the same splits and leaves; only the binary nodes' ids
    differ, which the wide tree does not keep). `threads` 1 builds on this one."""
    n = len(lower)
    # float32 boxes, rounded outwards so that every node still contains its primitives exactly
    lower64, upper64 = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    lo32, hi32 = lower64.astype(np.float32), upper64.astype(np.float32)
    lo32 = np.ascontiguousarray(np.where(lo32 > lower64, np.nextafter(lo32, np.float32(-np.inf)), lo32))
    hi32 = np.ascontiguousarray(np.where(hi32 < upper64, np.nextafter(hi32, np.float32(np.inf)), hi32))
    order = np.arange(n, dtype=np.int64)
    loop = compiled_build_loop()
    settings = (BINS, min(LEAF_SIZE, max_leaf), max_leaf, traversal_cost(n))

    def subtree(first: int, count: int, depth: int, only_root: bool = False):
        arrays = _node_arrays(3 if only_root else max(2 * count - 1, 3))  # the root alone: its children's ids
        made, levels, split = loop(lo32, hi32, order, *arrays, *settings, first, count, depth, only_root)
        return arrays, int(made), int(levels), int(split)

    threads = threads or min(2, os.cpu_count() or 1)
    if n < PARALLEL_MIN_PRIMITIVES or threads < 2:
        (node_lower, node_upper, left, right, leaf), count, levels, _ = subtree(0, n, 1)
        return Bvh(node_lower[:count], node_upper[:count], left[:count], right[:count], leaf[:count], order, levels)
    root, _, _, split = subtree(0, n, 1, only_root=True)
    if split < 0:  # the root is a leaf
        return Bvh(*(array[:1] for array in root), order, 1)
    with ThreadPoolExecutor(2, thread_name_prefix="bvh") as pool:
        halves = list(pool.map(lambda part: subtree(*part, 2), ((0, split), (split, n - split))))
    (below_left, made_left, levels_left, _), (below_right, made_right, levels_right, _) = halves
    total = 1 + made_left + made_right
    merged = _node_arrays(total)
    for target, root_value, left_part, right_part in zip(merged, root, below_left, below_right):
        target[0] = root_value[0]
        target[1:1 + made_left] = left_part[:made_left]
        target[1 + made_left:] = right_part[:made_right]
    node_lower, node_upper, left, right, leaf = merged
    for start, made in ((1, made_left), (1 + made_left, made_right)):  # interior nodes' children move along
        part = slice(start, start + made)
        interior = ~leaf[part]
        left[part][interior] += start
        right[part][interior] += start
    left[0], right[0] = 1, 1 + made_left
    return Bvh(node_lower, node_upper, left, right, leaf, order, max(levels_left, levels_right))


def _node_arrays(capacity: int) -> tuple[np.ndarray, ...]:
    """Room for `capacity` binary nodes: lower, upper, left, right, leaf."""
    return (np.zeros((capacity, 3)), np.zeros((capacity, 3)), np.zeros(capacity, np.int64),
            np.zeros(capacity, np.int64), np.zeros(capacity, np.bool_))


def warm_up() -> None:
    """Load (or, where the shipped code does not serve, compile) the compiled builder and
    collapse, on a tree of two boxes: the arguments' types are those of every build."""
    tree = build_compiled(np.zeros((2, 3)), np.ones((2, 3)))
    _collapse_compiled(tree, _area(tree.lower, tree.upper), WIDTH)


def _build_vectorised(lower: np.ndarray, upper: np.ndarray, leaf_size: int = LEAF_SIZE,
                      max_leaf: int = MAX_LEAF_SIZE) -> Bvh:
    """One tree level at a time: every node of a level is split at once, primitives
    grouped by node in `order`, so a level's bin bounds and counts are a few
    scatter-reductions over all of them, not a Python loop per node."""
    n = len(lower)
    cost = traversal_cost(n)
    # float32 throughout halves the memory traffic; boxes are rounded outwards so that
    # every node still contains its primitives exactly.
    lower64, upper64 = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    lo32, hi32 = lower64.astype(np.float32), upper64.astype(np.float32)
    lo32 = np.where(lo32 > lower64, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32 < upper64, np.nextafter(hi32, np.float32(np.inf)), hi32)
    # One row per primitive: box minimum, box maximum, centroid; one gather per level.
    prim_data = np.concatenate([lo32, hi32, (lo32 + hi32) * np.float32(0.5)], axis=1)
    order = np.arange(n)
    capacity = max(2 * n - 1, 1)
    node_lower = np.zeros((capacity, 3))
    node_upper = np.zeros((capacity, 3))
    left = np.zeros(capacity, np.int64)
    right = np.zeros(capacity, np.int64)
    leaf = np.zeros(capacity, bool)
    node_count = 1
    # The nodes of the current level: their ids, and their slot ranges in `order`.
    ids, starts, counts = np.array([0]), np.array([0]), np.array([n])
    levels = 0
    while len(ids):
        levels += 1
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        segment = np.repeat(np.arange(len(ids)), counts)
        slots = starts[segment] + np.arange(len(segment)) - offsets[segment]
        prims = order[slots]
        data = prim_data[prims]
        box_lo, box_hi, centroid = data[:, 0:3], data[:, 3:6], data[:, 6:9]
        node_lower[ids] = np.minimum.reduceat(box_lo, offsets)
        node_upper[ids] = np.maximum.reduceat(box_hi, offsets)
        # Deep levels hold many small nodes: fewer bins there cost little quality and keep
        # the per-(node, bin) arrays from outgrowing the primitives themselves.
        mean_count = len(prims) / len(ids)
        bins = BINS if mean_count >= 64 else 8 if mean_count >= 16 else 4
        split_axis, split_bin, split_cost, prim_bins = _best_splits(
            centroid, box_lo, box_hi, segment, offsets, len(ids), bins
        )
        node_area = _area(node_lower[ids], node_upper[ids])
        with np.errstate(divide="ignore", invalid="ignore"):
            sah = cost + split_cost / node_area
        sah = np.where(node_area > 0, sah, np.inf)
        splittable = np.isfinite(split_cost)
        make_leaf = (counts <= leaf_size) | ((sah >= counts) & (counts <= max_leaf))
        make_leaf |= ~splittable & (counts <= max_leaf)
        # Primitives of a node that must split but has no useful plane go half and half.
        halve = ~make_leaf & ~splittable
        split_nodes = ~make_leaf & splittable
        goes_left = split_nodes[segment] & (
            prim_bins[np.arange(len(prims)), split_axis[segment]] <= split_bin[segment]
        )
        rank = np.arange(len(prims)) - offsets[segment]
        goes_left |= halve[segment] & (rank < counts[segment] // 2)

        # Regroup: within each node, its left primitives first, order kept otherwise.
        key = segment * 2 + (~goes_left)
        perm = np.argsort(key, kind="stable")
        order[slots] = prims[perm]
        left_counts = np.bincount(segment, weights=goes_left, minlength=len(ids)).astype(np.int64)

        leaves = make_leaf
        leaf[ids[leaves]] = True
        left[ids[leaves]] = starts[leaves]
        right[ids[leaves]] = counts[leaves]
        parents = ids[~leaves]
        children = node_count + 2 * np.arange(len(parents))
        node_count += 2 * len(parents)
        left[parents], right[parents] = children, children + 1
        p_starts, p_counts, p_left = starts[~leaves], counts[~leaves], left_counts[~leaves]
        ids = np.stack([children, children + 1], axis=1).ravel()
        starts = np.stack([p_starts, p_starts + p_left], axis=1).ravel()
        counts = np.stack([p_left, p_counts - p_left], axis=1).ravel()
    return Bvh(
        node_lower[:node_count], node_upper[:node_count], left[:node_count], right[:node_count],
        leaf[:node_count], order, levels,
    )


def _centroid_bounds(c: np.ndarray, offsets: np.ndarray):
    return np.minimum.reduceat(c, offsets), np.maximum.reduceat(c, offsets)


def _best_splits(c, box_lo, box_hi, segment, offsets, nodes, n_bins):
    """For each node: the axis and bin after which to split, and the split's SAH cost
    (sum over both sides of area * count; inf where no plane separates anything); and
    each primitive's bin on every axis."""
    lo_c, hi_c = _centroid_bounds(c, offsets)
    extent = hi_c - lo_c
    with np.errstate(divide="ignore", invalid="ignore"):
        position = (c - lo_c[segment]) * (n_bins / extent[segment])
    bins = np.clip(np.nan_to_num(position, nan=0.0, posinf=0.0, neginf=0.0), 0, n_bins - 1).astype(np.int64)
    # One min-reduction serves both ends.
    boxes = np.ascontiguousarray(np.concatenate([box_lo, -box_hi], axis=1).T)
    best_cost = np.full(nodes, np.inf)
    best_axis = np.zeros(nodes, np.int64)
    best_bin = np.zeros(nodes, np.int64)
    for axis in range(3):
        key = segment * n_bins + bins[:, axis]
        count = np.bincount(key, minlength=nodes * n_bins).reshape(nodes, n_bins)
        bounds = np.full((6, nodes * n_bins), np.inf, np.float32)
        for column in range(6):  # ufunc.at is several times faster on 1-d operands
            np.minimum.at(bounds[column], key, boxes[column])
        bounds = bounds.T.reshape(nodes, n_bins, 6)
        left = np.minimum.accumulate(bounds, axis=1)
        right = np.minimum.accumulate(bounds[:, ::-1], axis=1)[:, ::-1]
        left_count = np.cumsum(count, axis=1)
        right_count = np.cumsum(count[:, ::-1], axis=1)[:, ::-1]
        with np.errstate(invalid="ignore"):
            left_area = _area(left[:, :-1, :3], -left[:, :-1, 3:])
            right_area = _area(right[:, 1:, :3], -right[:, 1:, 3:])
        n_left, n_right = left_count[:, :-1], right_count[:, 1:]
        cost = np.where(
            (n_left > 0) & (n_right > 0),
            np.nan_to_num(left_area) * n_left + np.nan_to_num(right_area) * n_right,
            np.inf,
        )
        cost[extent[:, axis] <= 0] = np.inf
        k = np.argmin(cost, axis=1)
        value = cost[np.arange(nodes), k]
        better = value < best_cost
        best_cost = np.where(better, value, best_cost)
        best_axis = np.where(better, axis, best_axis)
        best_bin = np.where(better, k, best_bin)
    return best_axis, best_bin, best_cost, bins


WIDTH = 8  # children per node of the wide tree the kernel walks: one AVX2 register of boxes


@dataclass(frozen=True)
class WideBvh:
    """The binary tree collapsed into nodes of up to WIDTH children (Wald et al. 2008,
    "Getting Rid of Packets"; Embree's BVH8). Per node and child slot: the child's box, and
    the child itself: a wide node (`child` its index, `count` -1), a leaf (`child` its
    first slot in `order`, `count` its primitives) or nothing (`count` 0)."""

    lower: np.ndarray  # (nodes, WIDTH, 3) float32, rounded outwards
    upper: np.ndarray  # (nodes, WIDTH, 3)
    child: np.ndarray  # (nodes, WIDTH) int64
    count: np.ndarray  # (nodes, WIDTH) int64
    stack: int  # the most entries a walk can hold on its stack at once


def _collapse_compiled(tree: Bvh, area: np.ndarray, width: int) -> list[np.ndarray]:
    """collapse's levels of slots from the compiled loop (farm.scene.bvh_loop.collapse_slots)."""
    from farm.scene.compiled import compiled

    capacity = max(1, int((~tree.leaf).sum()))  # a wide node a binary interior node, at most
    slots, node_of, depth = (np.empty((capacity, width), np.int64), np.empty(capacity, np.int64),
                             np.empty(capacity, np.int64))
    made = compiled(collapse_slots)(np.ascontiguousarray(tree.left, np.int64), np.ascontiguousarray(tree.right, np.int64),
                                    np.ascontiguousarray(tree.leaf, np.bool_), np.ascontiguousarray(area, np.float64),
                                    width, slots, node_of, depth)
    sizes = np.bincount(depth[:made])
    return np.split(slots[:made], np.cumsum(sizes)[:-1])


def collapse(tree: Bvh, width: int = WIDTH) -> WideBvh:
    """Collapse `tree` top-down, all nodes of a level at once: a wide node starts from its
    binary node's two children and opens the interior child of largest surface area until
    it has `width` children or none left to open (the greedy rule of Embree's BVH8)."""
    area = _area(tree.lower, tree.upper)
    leaf = tree.leaf
    levels = []  # per level of wide nodes: (binary ids of their children, -1 for none)
    level = np.array([0])
    if len(tree.order) >= COMPILED_MIN_PRIMITIVES:  # the same rule, compiled (numba is loaded for the tree)
        levels, level = _collapse_compiled(tree, area, width), []
    while len(level):
        rows = np.arange(len(level))
        slots = np.full((len(level), width), -1, np.int64)
        if leaf[0]:  # a root leaf: one wide node holding it
            slots[0, 0] = 0
        else:
            slots[:, 0], slots[:, 1] = tree.left[level], tree.right[level]
            for column in range(2, width):
                known = np.maximum(slots, 0)
                score = np.where((slots >= 0) & ~leaf[known], area[known], -1.0)
                best = np.argmax(score, axis=1)
                opens = score[rows, best] >= 0
                opened = slots[rows[opens], best[opens]]
                slots[rows[opens], best[opens]] = tree.left[opened]
                slots[rows[opens], column] = tree.right[opened]
        levels.append(slots)
        level = slots[(slots >= 0) & ~leaf[np.maximum(slots, 0)]]  # the next level's wide nodes
    slots = np.concatenate(levels)
    # Wide node ids follow creation order: level by level, each level's children row-major.
    known, valid = np.maximum(slots, 0), slots >= 0
    is_node = valid & ~leaf[known]
    wide_id = np.full(len(leaf), -1, np.int64)
    wide_id[slots[is_node]] = np.arange(1, 1 + int(is_node.sum()))
    child = np.where(is_node, wide_id[known], np.where(valid, tree.left[known], 0))
    count = np.where(is_node, -1, np.where(valid, tree.right[known], 0))
    # rounded outwards once per binary node, then gathered
    lower = np.nextafter(tree.lower.astype(np.float32), np.float32(-np.inf))[known]
    upper = np.nextafter(tree.upper.astype(np.float32), np.float32(np.inf))[known]
    lower[~valid], upper[~valid] = 0.0, 0.0
    # Stack bound: visiting a node pushes its children hit and pops one; the deepest sum of
    # (children - 1) along a path, plus the children of the last node.
    need = valid.sum(axis=1) - 1
    sizes = [len(s) for s in levels]
    starts = np.cumsum([0] + sizes[:-1])
    for start, size in zip(reversed(starts), reversed(sizes)):  # children's levels first
        part = slice(start, start + size)
        below = np.where(is_node[part], need[np.where(is_node[part], child[part], 0)], 0).max(axis=1)
        need[part] += below
    return WideBvh(lower, upper, child, count, int(need[0]) + 1)
