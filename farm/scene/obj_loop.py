"""The compiled OBJ reader's loops over the bytes of a plain OBJ file, written for numba
to compile: farm.scene.obj_reader compiles them, sizes their arrays, and gives trimesh any
file they do not take.

Plain means: lines of `v x y z`, `vn x y z`, `vt u v [w]` and triangles `f a b c` whose
corners all have one form (a, a/t, a//n or a/t/n) and positive indices; comments, blank
lines, `o`, `g`, `s` and `mtllib` lines, which trimesh does not use either. A decimal whose
digits make an integer below 2^53 (15 significant digits always do) times a power of ten up
to 1e22 is an exact integer times an exact power, which one IEEE multiply or divide rounds correctly (Clinger 1990, "How to read
floating point numbers accurately": the fast path); the loop leaves any other number to the
caller's float(). So every value is the float64 strtod gives, as in trimesh's reading.
Anything else returns a non-zero status, and the caller reads the file with trimesh.

The bytes come from outside and numba checks no index: every write is checked here.
"""

from __future__ import annotations

import numpy as np

# status codes: why a file is not plain (the caller logs nothing: trimesh reads it)
PLAIN, UNKNOWN_LINE, BAD_NUMBER, BAD_FACE, BAD_COUNT = 0, 1, 2, 3, 4

NL, CR, SPACE = 10, 13, 32
EXACT_POWERS = np.array([10.0 ** k for k in range(23)])  # exact in float64 up to 1e22
MANTISSA_LIMIT = 1 << 53  # an integer below this is exact in float64


def count_lines(data):  # pragma: no cover - compiled
    """Lines of v, vn, vt and f in `data` (uint8), and the form of the first face's first
    corner (1 a, 2 a/t, 3 a//n, 4 a/t/n; 0 without faces), to size read_plain's arrays."""
    n = len(data)
    nv = nvn = nvt = nf = 0
    form = 0
    i = 0
    while i < n:
        c = data[i]
        if c == 118 and i + 1 < n:
            d = data[i + 1]
            if d == SPACE:
                nv += 1
            elif i + 2 < n and data[i + 2] == SPACE:
                if d == 110:
                    nvn += 1
                elif d == 116:
                    nvt += 1
        elif c == 102 and i + 1 < n and data[i + 1] == SPACE:
            nf += 1
            if form == 0:
                j = i + 2
                while j < n and data[j] == SPACE:
                    j += 1
                while j < n and 48 <= data[j] <= 57:
                    j += 1
                form = 1
                if j + 1 < n and data[j] == 47:
                    form = 3 if data[j + 1] == 47 else 2
                    if form == 2:
                        j += 1
                        while j < n and 48 <= data[j] <= 57:
                            j += 1
                        if j < n and data[j] == 47:
                            form = 4
        while i < n and data[i] != NL:
            i += 1
        i += 1
    return nv, nvn, nvt, nf, form


def median_refs(faces, refs, vertices):  # pragma: no cover - compiled
    """trimesh's choice of one texture or normal index per vertex (unmerge_faces with
    maintain_faces): per corner slot the last index any face gives the vertex there, then
    the median over the slots that have one (two: their mean, truncated, as numpy's
    nanmedian and astype make it). Returns (indices, False) when a vertex has none, where
    trimesh's index is NaN's and the attribute is dropped."""
    slots = np.full((3, vertices), -1, np.int64)
    for f in range(len(faces)):
        for k in range(3):
            slots[k, faces[f, k]] = refs[f, k]
    out = np.empty(vertices, np.int64)
    present = np.empty(3, np.int64)
    for vertex in range(vertices):
        k = 0
        for slot in range(3):
            if slots[slot, vertex] >= 0:
                present[k] = slots[slot, vertex]
                k += 1
        if k == 0:
            return out, False
        if k == 1:
            out[vertex] = present[0]
        elif k == 2:
            out[vertex] = int((float(present[0]) + float(present[1])) / 2.0)
        else:
            a, b, c = present[0], present[1], present[2]
            out[vertex] = max(min(a, b), min(max(a, b), c))
    return out, True


def read_plain(data, out_v, out_vn, out_vt, out_faces, out_tex, out_norm, out_hard, powers):  # pragma: no cover - compiled
    """Fill the arrays (sized by count_lines) from `data` (uint8); returns (status, numbers
    left to the caller, face form). A number beyond the fast path is left as 0.0 and
    noted in out_hard: (0 v, 1 vn, 2 vt; row; column; first byte; byte after it)."""
    n = len(data)
    i = 0
    nv = nvn = nvt = nf = 0
    vt_width = 0
    hard_count = 0
    form = 0
    values = np.empty(4, np.float64)
    refs = np.zeros(3, np.int64)
    while i < n:
        c = data[i]
        if c == NL or c == CR:
            i += 1
            continue
        kind = 0  # 1 v, 2 vn, 3 vt, 4 f, 5 skip
        if c == 118 and i + 1 < n and data[i + 1] == SPACE:  # "v "
            kind, i = 1, i + 2
        elif c == 118 and i + 2 < n and data[i + 1] == 110 and data[i + 2] == SPACE:  # "vn "
            kind, i = 2, i + 3
        elif c == 118 and i + 2 < n and data[i + 1] == 116 and data[i + 2] == SPACE:  # "vt "
            kind, i = 3, i + 3
        elif c == 102 and i + 1 < n and data[i + 1] == SPACE:  # "f "
            kind, i = 4, i + 2
        elif c == 35 or ((c == 111 or c == 103 or c == 115) and i + 1 < n and data[i + 1] == SPACE):  # # o g s
            kind = 5
        elif c == 109 and i + 6 < n and data[i + 1] == 116 and data[i + 2] == 108 and data[i + 3] == 108 \
                and data[i + 4] == 105 and data[i + 5] == 98 and data[i + 6] == SPACE:  # "mtllib "
            kind = 5
        elif c == SPACE:  # a line of spaces only
            j = i
            while j < n and data[j] == SPACE:
                j += 1
            if j < n and data[j] != NL and data[j] != CR:
                return UNKNOWN_LINE, 0, 0
            i = j
            continue
        else:
            return UNKNOWN_LINE, 0, 0
        if kind == 5:
            while i < n and data[i] != NL:
                i += 1
            continue
        if kind <= 3:
            count = 0
            while True:
                while i < n and data[i] == SPACE:
                    i += 1
                if i >= n or data[i] == NL or data[i] == CR:
                    break
                if count == 4:
                    return BAD_COUNT, 0, 0
                # one decimal: sign, digits, fraction, exponent
                start = i
                negative = False
                if data[i] == 45 or data[i] == 43:
                    negative = data[i] == 45
                    i += 1
                mantissa = 0
                digits = 0  # significant digits (from the first non-zero one)
                seen = 0  # digits at all
                scale = 0
                point = False
                while i < n and (48 <= data[i] <= 57 or (data[i] == 46 and not point)):
                    if data[i] == 46:
                        point = True
                        i += 1
                        continue
                    d = data[i] - 48
                    if digits > 0 or d != 0:
                        digits += 1
                        if digits <= 18:
                            mantissa = mantissa * 10 + d
                        elif not point:
                            scale += 1
                    if point and digits <= 18:
                        scale -= 1
                    seen += 1
                    i += 1
                if seen == 0:
                    return BAD_NUMBER, 0, 0
                hard = digits > 18
                if i < n and (data[i] == 101 or data[i] == 69):  # e E
                    i += 1
                    exp_negative = False
                    if i < n and (data[i] == 45 or data[i] == 43):
                        exp_negative = data[i] == 45
                        i += 1
                    exponent = 0
                    exp_digits = 0
                    while i < n and 48 <= data[i] <= 57:
                        if exp_digits < 6:
                            exponent = exponent * 10 + (data[i] - 48)
                        exp_digits += 1
                        i += 1
                    if exp_digits == 0:
                        return BAD_NUMBER, 0, 0
                    hard = hard or exp_digits >= 6
                    scale += -exponent if exp_negative else exponent
                if i < n and data[i] != SPACE and data[i] != NL and data[i] != CR:
                    return BAD_NUMBER, 0, 0
                while mantissa != 0 and mantissa % 10 == 0:
                    mantissa //= 10
                    scale += 1
                if hard or mantissa >= MANTISSA_LIMIT or (mantissa != 0 and (scale > 22 or scale < -22)):
                    # beyond the fast path: the caller reads this one with Python's float()
                    if hard_count == len(out_hard):
                        return BAD_NUMBER, 0, 0
                    out_hard[hard_count, 0] = kind - 1
                    out_hard[hard_count, 1] = nv if kind == 1 else (nvn if kind == 2 else nvt)
                    out_hard[hard_count, 2] = count
                    out_hard[hard_count, 3] = start
                    out_hard[hard_count, 4] = i
                    hard_count += 1
                    values[count] = 0.0
                    count += 1
                    continue
                value = float(mantissa)
                if mantissa != 0:
                    value = value * powers[scale] if scale >= 0 else value / powers[-scale]
                values[count] = -value if negative else value
                count += 1
            if kind == 1:
                if count != 3 or nv >= len(out_v):
                    return BAD_COUNT, 0, 0
                out_v[nv, 0], out_v[nv, 1], out_v[nv, 2] = values[0], values[1], values[2]
                nv += 1
            elif kind == 2:
                if count != 3 or nvn >= len(out_vn):
                    return BAD_COUNT, 0, 0
                out_vn[nvn, 0], out_vn[nvn, 1], out_vn[nvn, 2] = values[0], values[1], values[2]
                nvn += 1
            else:
                if vt_width == 0:
                    vt_width = count
                if count != vt_width or count < 2 or count > 3 or nvt >= len(out_vt):
                    return BAD_COUNT, 0, 0
                out_vt[nvt, 0], out_vt[nvt, 1] = values[0], values[1]
                nvt += 1
            continue
        # a face: three corners of one form
        if nf >= len(out_faces):
            return BAD_COUNT, 0, 0
        corners = 0
        while True:
            while i < n and data[i] == SPACE:
                i += 1
            if i >= n or data[i] == NL or data[i] == CR:
                break
            if corners == 3:
                return BAD_FACE, 0, 0
            refs[0] = refs[1] = refs[2] = 0
            present = 0  # bit 0 texture, bit 1 normal
            for slot in range(3):
                if slot > 0:
                    if i < n and data[i] == 47:  # "/"
                        i += 1
                    else:
                        break
                    if slot == 1 and i < n and data[i] == 47:  # "a//n": no texture
                        continue
                number = 0
                length = 0
                while i < n and 48 <= data[i] <= 57:
                    number = number * 10 + (data[i] - 48)
                    length += 1
                    if length > 12:
                        return BAD_FACE, 0, 0
                    i += 1
                if length == 0 or number == 0:
                    return BAD_FACE, 0, 0
                refs[slot] = number - 1
                if slot > 0:
                    present |= slot
            if i < n and data[i] != SPACE and data[i] != NL and data[i] != CR:
                return BAD_FACE, 0, 0
            corner_form = present + 1
            if form == 0:
                form = corner_form
            if corner_form != form:
                return BAD_FACE, 0, 0
            if (present & 1 and nf >= len(out_tex)) or (present & 2 and nf >= len(out_norm)):
                return BAD_FACE, 0, 0  # sized from count_lines' reading of the first corner
            out_faces[nf, corners] = refs[0]
            if present & 1:
                out_tex[nf, corners] = refs[1]
            if present & 2:
                out_norm[nf, corners] = refs[2]
            corners += 1
        if corners != 3:
            return BAD_FACE, 0, 0
        nf += 1
    if nv != len(out_v) or nvn != len(out_vn) or nvt != len(out_vt) or nf != len(out_faces):
        return BAD_COUNT, 0, 0
    return PLAIN, hard_count, form
