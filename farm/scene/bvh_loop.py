"""The compiled builder's loop: the textbook binned surface area heuristic, one node at a
time (Wald 2007, "On fast Construction of SAH-based Bounding Volume Hierarchies"; pbrt-v4's
BVHAggregate::buildRecursive), written for numba to compile. farm.scene.bvh allocates its
arrays and makes the Bvh of them; numba is imported only when a process first asks for it.

Each node bins its centroids on all three axes, sweeps the bins for the cheapest split and
partitions its slice of `order` in place, left primitives first, each side in its former
order, so the tree is the same on every machine. And collapse_slots: the binary tree's
collapse to wide nodes (farm.scene.bvh.collapse) for big trees.
"""

from __future__ import annotations

import numpy as np

def compiled_build_loop():
    """build_loop compiled by numba, imported only by a process that builds a big tree:
    its code comes built (farm.scene.compiled); where it does not serve, numba compiles it
    once a machine."""
    from farm.scene.compiled import compiled

    return compiled(build_loop)


def build_loop(lo, hi, order, node_lower, node_upper, left, right, leaf, max_bins, leaf_size, max_leaf_size,
               traversal_cost, first_slot, slots, root_depth, only_root):  # pragma: no cover - compiled
    """The subtree of order[first_slot:first_slot + slots] (its root at depth root_depth),
    its nodes numbered from 0 in the arrays given; with only_root, the root alone (its
    children get ids 1 and 2 and are not built). Returns (nodes made, deepest depth, the
    root's split slot, or -1 where the root is a leaf)."""
    n = slots
    # the work stack: node id, first slot, count, depth
    stack = np.empty((128, 4), np.int64)
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 0, first_slot, n, root_depth
    top = 1
    node_count = 1
    levels = 0
    root_split = -1
    bin_count = np.empty((3, max_bins), np.int64)
    bin_box = np.empty((3, max_bins, 6), np.float64)
    left_area = np.empty(max_bins, np.float64)
    left_n = np.empty(max_bins, np.int64)
    scratch = np.empty(n, np.int64)
    c_lo, c_hi = np.empty(3, np.float64), np.empty(3, np.float64)
    while top > 0:
        top -= 1
        node, first, count, depth = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        if depth > levels:
            levels = depth
        # the node's box and its centroids' box
        for k in range(3):
            node_lower[node, k], node_upper[node, k] = np.inf, -np.inf
            c_lo[k], c_hi[k] = np.inf, -np.inf
        for slot in range(first, first + count):
            p = order[slot]
            for k in range(3):
                a, b = np.float64(lo[p, k]), np.float64(hi[p, k])
                if a < node_lower[node, k]:
                    node_lower[node, k] = a
                if b > node_upper[node, k]:
                    node_upper[node, k] = b
                c = (np.float64(lo[p, k]) + np.float64(hi[p, k])) * 0.5
                if c < c_lo[k]:
                    c_lo[k] = c
                if c > c_hi[k]:
                    c_hi[k] = c
        dx = max(node_upper[node, 0] - node_lower[node, 0], 0.0)
        dy = max(node_upper[node, 1] - node_lower[node, 1], 0.0)
        dz = max(node_upper[node, 2] - node_lower[node, 2], 0.0)
        node_area = 2.0 * (dx * dy + dy * dz + dz * dx)
        best_cost, best_axis, best_bin = np.inf, -1, -1
        # small nodes: fewer candidate planes, little quality lost and most nodes are small
        bins = max_bins if count >= 64 else min(8, max_bins) if count >= 16 else min(4, max_bins)
        if count > leaf_size:
            for k in range(3):
                for j in range(bins):
                    bin_count[k, j] = 0
                    for q in range(3):
                        bin_box[k, j, q] = np.inf
                        bin_box[k, j, 3 + q] = -np.inf
            for slot in range(first, first + count):
                p = order[slot]
                for k in range(3):
                    extent = c_hi[k] - c_lo[k]
                    if extent <= 0.0:
                        continue
                    c = (np.float64(lo[p, k]) + np.float64(hi[p, k])) * 0.5
                    j = min(max(int((c - c_lo[k]) * (bins / extent)), 0), bins - 1)
                    bin_count[k, j] += 1
                    for q in range(3):
                        if lo[p, q] < bin_box[k, j, q]:
                            bin_box[k, j, q] = lo[p, q]
                        if hi[p, q] > bin_box[k, j, 3 + q]:
                            bin_box[k, j, 3 + q] = hi[p, q]
            for k in range(3):
                if c_hi[k] - c_lo[k] <= 0.0:
                    continue
                # sweep from the left: area and count of bins 0..j
                x0, y0, z0, x1, y1, z1 = np.inf, np.inf, np.inf, -np.inf, -np.inf, -np.inf
                total = 0
                for j in range(bins):
                    total += bin_count[k, j]
                    x0, y0, z0 = min(x0, bin_box[k, j, 0]), min(y0, bin_box[k, j, 1]), min(z0, bin_box[k, j, 2])
                    x1, y1, z1 = max(x1, bin_box[k, j, 3]), max(y1, bin_box[k, j, 4]), max(z1, bin_box[k, j, 5])
                    left_n[j] = total
                    ex, ey, ez = max(x1 - x0, 0.0), max(y1 - y0, 0.0), max(z1 - z0, 0.0)
                    left_area[j] = 2.0 * (ex * ey + ey * ez + ez * ex) if total > 0 else 0.0
                # from the right: the split after bin j has bins j + 1.. on its right
                x0, y0, z0, x1, y1, z1 = np.inf, np.inf, np.inf, -np.inf, -np.inf, -np.inf
                total = 0
                for j in range(bins - 1, 0, -1):
                    total += bin_count[k, j]
                    x0, y0, z0 = min(x0, bin_box[k, j, 0]), min(y0, bin_box[k, j, 1]), min(z0, bin_box[k, j, 2])
                    x1, y1, z1 = max(x1, bin_box[k, j, 3]), max(y1, bin_box[k, j, 4]), max(z1, bin_box[k, j, 5])
                    n_left = left_n[j - 1]
                    if total == 0 or n_left == 0:
                        continue
                    ex, ey, ez = max(x1 - x0, 0.0), max(y1 - y0, 0.0), max(z1 - z0, 0.0)
                    cost = left_area[j - 1] * n_left + 2.0 * (ex * ey + ey * ez + ez * ex) * total
                    if cost < best_cost or (cost == best_cost and (k < best_axis or (k == best_axis and j - 1 < best_bin))):
                        best_cost, best_axis, best_bin = cost, k, j - 1
        splittable = best_axis >= 0
        sah = traversal_cost + best_cost / node_area if node_area > 0.0 else np.inf
        make_leaf = count <= leaf_size or (sah >= count and count <= max_leaf_size) \
            or (not splittable and count <= max_leaf_size)
        if make_leaf:
            leaf[node] = True
            left[node], right[node] = first, count
            continue
        # partition: left primitives first, each side in its former order
        middle = first
        if splittable:
            extent = c_hi[best_axis] - c_lo[best_axis]
            kept = 0
            for slot in range(first, first + count):
                p = order[slot]
                c = (np.float64(lo[p, best_axis]) + np.float64(hi[p, best_axis])) * 0.5
                if min(max(int((c - c_lo[best_axis]) * (bins / extent)), 0), bins - 1) <= best_bin:
                    order[middle] = p
                    middle += 1
                else:
                    scratch[kept] = p
                    kept += 1
            for i in range(kept):
                order[middle + i] = scratch[i]
        else:  # no plane separates anything: half and half
            middle = first + count // 2
        child = node_count
        node_count += 2
        left[node], right[node] = child, child + 1
        if node == 0:
            root_split = middle
            if only_root:
                break
        if top + 2 > stack.shape[0]:
            grown = np.empty((stack.shape[0] * 2, 4), np.int64)
            grown[:top] = stack[:top]
            stack = grown
        # the right child below the left: the left is built first
        stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = child + 1, middle, first + count - middle, depth + 1
        stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2], stack[top + 1, 3] = child, first, middle - first, depth + 1
        top += 2
    return node_count, levels, root_split


def collapse_slots(left, right, leaf, area, width, slots, node_of, depth):  # pragma: no cover - compiled
    """farm.scene.bvh.collapse's greedy rule, a wide node at a time in creation order (a
    queue: each level's nodes, then their interior children row by row, which is the level
    by level order of the vectorised rule): slots[r] the binary ids of wide node r's
    children (-1 for none), opened from its binary node's two children by the interior
    child of largest area (the first of equals) until `width` or none is left to open;
    depth[r] its level. Returns the number of wide nodes."""
    slots[0, :] = -1
    depth[0] = 0
    if leaf[0]:  # a root leaf: one wide node holding it
        slots[0, 0] = 0
        return 1
    node_of[0] = 0
    made = 1
    row = 0
    while row < made:
        binary = node_of[row]
        for j in range(width):
            slots[row, j] = -1
        slots[row, 0], slots[row, 1] = left[binary], right[binary]
        for column in range(2, width):
            best, best_score = 0, -1.0
            for j in range(width):
                child = slots[row, j]
                score = area[child] if child >= 0 and not leaf[child] else -1.0
                if j == 0 or score > best_score:
                    best, best_score = j, score
            if best_score >= 0:
                opened = slots[row, best]
                slots[row, best] = left[opened]
                slots[row, column] = right[opened]
        for j in range(width):
            child = slots[row, j]
            if child >= 0 and not leaf[child]:
                node_of[made] = child
                depth[made] = depth[row] + 1
                made += 1
        row += 1
    return made
