"""Synthetic HPA-like 4-channel fields: the built-in default data.

:func:`make_synthetic_hpa` draws fields of several irregular, non-overlapping cells,
each with one nucleus, in the four HPA channels (``DEFAULT_CHANNELS`` order): red
microtubule filaments radiating from a centrosome, green protein following the
sample's localization classes, blue DAPI-like nuclei and yellow perinuclear
reticular ER. The true nucleus and cell label images and the support of every green
pattern come back on request, so segmenters and localization maps can be scored
against ground truth.

The real HPA 2018 label statistics (class counts and labels per image, from the
31,072-row Kaggle ``train.csv``) are copied below as constants; they drive
``imbalance="hpa2018"`` without reading the file at run time.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from protloc.io import DEFAULT_CHANNELS, HPA_CLASSES

__all__ = [
    "HPA2018_CLASS_COUNTS",
    "HPA2018_LABELS_PER_IMAGE",
    "SYNTHETIC_CLASSES",
    "make_synthetic_hpa",
    "synthetic_class_names",
]

#: Images carrying each of the 28 classes in the HPA 2018 training labels (31,072 images).
HPA2018_CLASS_COUNTS = (
    12885, 1254, 3621, 1561, 1858, 2513, 1008, 2822, 53, 45, 28, 1093, 688, 537,
    1066, 21, 530, 210, 902, 1482, 172, 3777, 802, 2965, 322, 8228, 328, 11,
)  # fmt: skip

#: Images with 1, 2, 3, 4 and 5 labels in the HPA 2018 training labels.
HPA2018_LABELS_PER_IMAGE = (15126, 12485, 3160, 299, 2)

#: HPA 2018 class indices that have a synthetic green pattern; the default ``classes``.
SYNTHETIC_CLASSES = (0, 1, 2, 4, 5, 6, 7, 14, 19, 21, 23, 25)

_MIN_IMAGE_SIZE = 32
_FAR = np.float32(1e3)
# Patterns confined to one compartment (the rest may touch both, e.g. microtubules).
_NUCLEAR = (0, 2, 4, 5)
_CYTOPLASMIC = (6, 7, 23, 25)


def synthetic_class_names(classes=None):
    """HPA names of synthetic classes, in the column order of ``Y``.

    Parameters
    ----------
    classes : sequence of int, default=None
        HPA 2018 class indices; ``None`` means :data:`SYNTHETIC_CLASSES`.

    Returns
    -------
    names : tuple of str

    Examples
    --------
    >>> synthetic_class_names([0, 25])
    ('Nucleoplasm', 'Cytosol')
    """
    return tuple(HPA_CLASSES[c] for c in _check_classes(classes))


# --------------------------------------------------------------------------- validation
def _check_classes(classes):
    if classes is None:
        return SYNTHETIC_CLASSES
    if isinstance(classes, (str, bytes)) or np.ndim(classes) != 1:
        raise ValueError(
            f"classes must be a 1-d sequence of HPA 2018 class indices, got {classes!r}; "
            f"for example classes={list(SYNTHETIC_CLASSES[:3])}."
        )
    out = []
    for c in classes:
        if not isinstance(c, Integral | np.integer) or isinstance(c, bool):
            raise ValueError(f"Class {c!r} is not an integer HPA 2018 class index (0..27).")
        c = int(c)
        if not 0 <= c < len(HPA_CLASSES):
            raise ValueError(f"Class index {c} is outside the HPA 2018 table 0..27.")
        if c not in SYNTHETIC_CLASSES:
            raise ValueError(
                f"Class {c} ({HPA_CLASSES[c]}) has no synthetic pattern; choose from "
                f"SYNTHETIC_CLASSES = {SYNTHETIC_CLASSES}."
            )
        if c in out:
            raise ValueError(f"Class {c} is listed twice in classes; list each class once.")
        out.append(c)
    if not out:
        raise ValueError("classes is empty; pass at least one class index or None.")
    return tuple(out)


def _check_n_cells(n_cells):
    if isinstance(n_cells, Integral):
        low = high = int(n_cells)
    else:
        if len(n_cells) != 2 or not all(isinstance(v, Integral) for v in n_cells):
            raise ValueError(
                f"n_cells must be an int or a (low, high) pair of ints, got {n_cells!r}."
            )
        low, high = int(n_cells[0]), int(n_cells[1])
    if not 1 <= low <= high:
        raise ValueError(f"n_cells must satisfy 1 <= low <= high, got {n_cells!r}.")
    return low, high


def _check_weights(imbalance, classes):
    if imbalance is None:
        return np.ones(len(classes)), None
    if isinstance(imbalance, str):  # "hpa2018", validated by validate_params
        counts = np.asarray(HPA2018_LABELS_PER_IMAGE, dtype=float)
        return np.array([HPA2018_CLASS_COUNTS[c] for c in classes], float), counts
    weights = np.asarray(imbalance, dtype=float)
    if weights.shape != (len(classes),):
        raise ValueError(
            f"imbalance as weights needs one weight per class: shape ({len(classes)},), "
            f"got {weights.shape}."
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("imbalance weights must be finite, non-negative and not all zero.")
    return weights, None


# --------------------------------------------------------------------------- geometry
class _Shapes(NamedTuple):
    """Perturbed ellipses: centre, mean radius, aspect, angle, radial harmonics."""

    cy: np.ndarray
    cx: np.ndarray
    r: np.ndarray
    aspect: np.ndarray
    angle: np.ndarray
    amps: np.ndarray  # (n, 3): amplitudes of the cos(2t), cos(3t), cos(4t) wobble
    phases: np.ndarray

    def extent(self, k):
        return self.r[k] * np.sqrt(self.aspect[k]) * (1 + self.amps[k].sum()) + 2

    def distance(self, k, yy, xx):
        """Normalized distance: < 1 inside shape k, 1 on its outline."""
        c, s = np.cos(self.angle[k]), np.sin(self.angle[k])
        dy = (yy - self.cy[k]).astype(np.float32)
        dx = (xx - self.cx[k]).astype(np.float32)
        root = np.sqrt(self.aspect[k])
        u = dx * np.float32(c / (self.r[k] * root)) + dy * np.float32(s / (self.r[k] * root))
        v = dy * np.float32(c * root / self.r[k]) - dx * np.float32(s * root / self.r[k])
        rho = np.hypot(u, v)
        # cos(j t + phase) through the multiple-angle recurrence: no arctan2 or cos per pixel.
        c1 = np.divide(u, rho, out=np.ones_like(u), where=rho > 0)
        s1 = np.divide(v, rho, out=np.zeros_like(v), where=rho > 0)
        cj, sj = c1 * c1 - s1 * s1, 2 * c1 * s1
        wobble = np.ones_like(u)
        for j in range(3):
            a, ph = self.amps[k, j], self.phases[k, j]
            wobble += np.float32(a * np.cos(ph)) * cj - np.float32(a * np.sin(ph)) * sj
            cj, sj = cj * c1 - sj * s1, sj * c1 + cj * s1
        return rho / wobble

    def point(self, k, rho, t):
        """Pixel position at normalized radius ``rho`` and frame angle ``t`` of shape k."""
        root = np.sqrt(self.aspect[k])
        u = rho * np.cos(t) * self.r[k] * root
        v = rho * np.sin(t) * self.r[k] / root
        c, s = np.cos(self.angle[k]), np.sin(self.angle[k])
        return self.cy[k] + u * s + v * c, self.cx[k] + u * c - v * s


def _random_shapes(rng, cy, cx, r, aspect_high, wobble):
    n = len(cy)
    return _Shapes(
        cy=np.asarray(cy, float),
        cx=np.asarray(cx, float),
        r=np.asarray(r, float),
        aspect=rng.uniform(1.0, aspect_high, n),
        angle=rng.uniform(0, np.pi, n),
        amps=rng.uniform(0, wobble, (n, 3)),
        phases=rng.uniform(0, 2 * np.pi, (n, 3)),
    )


def _bbox(shapes, k, size):
    e = shapes.extent(k)
    r0, r1 = max(int(shapes.cy[k] - e), 0), min(int(shapes.cy[k] + e) + 2, size)
    c0, c1 = max(int(shapes.cx[k] - e), 0), min(int(shapes.cx[k] + e) + 2, size)
    rows = np.arange(r0, r1, dtype=np.float32)[:, None]
    return (slice(r0, r1), slice(c0, c1)), (rows, np.arange(c0, c1, dtype=np.float32))


def _place_cells(rng, size, n_target):
    """Cell radii and centres, drawn with rejection so that neighbours only touch."""
    # Fewer cells per field get bigger cells, as in a real field of view.
    base = size * np.clip(np.sqrt(0.5 / (np.pi * n_target)), 0.09, 0.2)
    radii = base * rng.uniform(0.8, 1.2, n_target)
    centres, kept = [], []
    for r in radii:
        margin = 0.7 * r
        cand = rng.uniform(margin, size - margin, (40, 2))
        ok = np.ones(len(cand), bool)
        for (py, px), pr in zip(centres, kept, strict=True):
            ok &= np.hypot(cand[:, 0] - py, cand[:, 1] - px) >= 0.9 * (r + pr)
        if ok.any():
            centres.append(cand[np.argmax(ok)])
            kept.append(r)
    centres = np.array(centres)
    return centres[:, 0], centres[:, 1], np.array(kept)


class _Field(NamedTuple):
    size: int
    scale: float  # pixels per pixel of a 256-pixel field
    cells: np.ndarray  # (rows, cols) int32 labels 1..n
    nuclei: np.ndarray  # (rows, cols) int32, same labels
    dcell: np.ndarray  # normalized distance to the own cell's centre (< 1 inside)
    dnuc: np.ndarray  # normalized distance to the own nucleus' centre (< 1 inside)
    rnuc: np.ndarray  # (rows, cols) nucleus radius of the pixel's cell, 0 outside
    nuc: _Shapes
    cell_shapes: _Shapes
    cyto: np.ndarray  # bool
    edge: np.ndarray  # bool, cell outline band
    code: np.ndarray  # 2 * cell label + (pixel in nucleus): both in one lookup
    direction: np.ndarray  # (n,) frame angle of the Golgi / centrosome side of nucleus


def _make_field(rng, size, n_target):
    scale = size / 256.0
    cy, cx, r = _place_cells(rng, size, n_target)
    n = len(r)
    cells_s = _random_shapes(rng, cy, cx, r, 2.0, 0.11)
    # The nucleus lies off-centre along the cell's long axis, aligned with it, and
    # narrower cells get smaller nuclei so that the nucleus stays inside.
    off = rng.uniform(-0.15, 0.15, n) * r
    ca, sa = np.cos(cells_s.angle), np.sin(cells_s.angle)
    nuc_s = _random_shapes(
        rng, cy + off * sa, cx + off * ca,
        r * rng.uniform(0.36, 0.48, n) / cells_s.aspect**0.25, 1.35, 0.04,
    )._replace(angle=cells_s.angle + rng.normal(0, 0.3, n))  # fmt: skip

    best = np.full((size, size), np.inf, np.float32)
    cells = np.zeros((size, size), np.int32)
    for k in range(n):
        sl, (yy, xx) = _bbox(cells_s, k, size)
        d = cells_s.distance(k, yy, xx)
        win = (d < 1) & (d < best[sl])
        best[sl][win] = d[win]
        cells[sl][win] = k + 1

    nuclei = np.zeros_like(cells)
    # Finite "far away" outside cells, so that distance * radius(0) stays 0, not NaN.
    dnuc = np.full((size, size), _FAR, np.float32)
    for k in range(n):
        sl, (yy, xx) = _bbox(cells_s, k, size)
        own = cells[sl] == k + 1
        d = nuc_s.distance(k, yy, xx)
        dnuc[sl][own] = d[own]
        nuclei[sl][own & (d < 1)] = k + 1

    # A neighbour may, rarely, claim a whole nucleus: drop that cell, keep labels 1..n.
    present = np.zeros(n + 1, bool)
    present[np.unique(nuclei)] = True
    present[0] = False
    if not present[1:].all():
        keep = np.flatnonzero(present[1:])
        relabel = np.zeros(n + 1, np.int32)
        relabel[keep + 1] = np.arange(1, len(keep) + 1)
        cells, nuclei = relabel[cells], relabel[nuclei]
        dnuc[cells == 0] = _FAR
        cells_s = _Shapes(*(a[keep] for a in cells_s))
        nuc_s = _Shapes(*(a[keep] for a in nuc_s))
        n = len(keep)

    rnuc = np.concatenate([[0.0], nuc_s.r]).astype(np.float32)[cells]
    band = max(1, round(1.5 * scale))
    interior = ndimage.minimum_filter(cells, 2 * band + 1) == ndimage.maximum_filter(
        cells, 2 * band + 1
    )
    edge = (cells > 0) & ~interior

    # Golgi and centrosome sit on the side of the nucleus with the most cytoplasm.
    direction = np.empty(n)
    for k in range(n):
        t = rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, 8, endpoint=False)
        room = []
        for rho in (1.6, 1.3):
            y, x = nuc_s.point(k, rho, t)
            yi = np.clip(np.round(y).astype(int), 0, size - 1)
            xi = np.clip(np.round(x).astype(int), 0, size - 1)
            room.append((cells[yi, xi] == k + 1) & (nuclei[yi, xi] == 0))
        score = 2 * room[0] + room[1] + rng.uniform(0, 0.5, 8)
        direction[k] = t[np.argmax(score)]

    return _Field(
        size=size, scale=scale, cells=cells, nuclei=nuclei,
        dcell=np.where(cells > 0, best, _FAR), dnuc=dnuc, rnuc=rnuc,
        nuc=nuc_s, cell_shapes=cells_s, cyto=(cells > 0) & (nuclei == 0),
        edge=edge, direction=direction, code=2 * cells + (nuclei > 0),
    )  # fmt: skip


# --------------------------------------------------------------------------- drawing
def _smooth_noise(rng, shape, sigma):
    """Smoothed Gaussian noise with unit standard deviation per 2-d plane."""
    z = rng.standard_normal(shape, dtype=np.float32)
    sig = (0,) * (z.ndim - 2) + (sigma, sigma)
    z = ndimage.gaussian_filter(z, sig, truncate=3.0)
    return z / (z.std(axis=(-2, -1), keepdims=True) + 1e-6)


def _splat(img, cy, cx, sigma, amp):
    """Add one Gaussian blob of peak ``amp``, computed only in its bounding box."""
    size = img.shape[0]
    e = 3 * sigma + 1
    r0, r1 = max(int(cy - e), 0), min(int(cy + e) + 2, size)
    c0, c1 = max(int(cx - e), 0), min(int(cx + e) + 2, size)
    if r0 >= r1 or c0 >= c1:
        return
    # A Gaussian is separable: two 1-d profiles and one outer product.
    gy = np.exp(-((np.arange(r0, r1) - cy) ** 2) / (2 * sigma**2))
    gx = np.exp(-((np.arange(c0, c1) - cx) ** 2) / (2 * sigma**2))
    img[r0:r1, c0:c1] += np.outer(amp * gy, gx)


def _impulses(size, flat, weights):
    """Image of summed point weights at flat pixel indices (-1 = outside, dropped)."""
    ok = flat >= 0
    img = np.bincount(flat[ok], np.broadcast_to(weights, flat.shape)[ok], minlength=size * size)
    return img.reshape(size, size).astype(np.float32)


def _dots(rng, f, where, per_pixel, sigma, amp_low):
    """Gaussian dots at random pixels of ``where``, peaks in [amp_low, 1]."""
    idx = np.flatnonzero(where)
    if idx.size == 0:
        return np.zeros((f.size, f.size), np.float32)
    pick = rng.choice(idx, rng.poisson(per_pixel * idx.size))
    y, x = np.divmod(pick, f.size)
    jitter = rng.uniform(-0.5, 0.5, (2, y.size))
    flat = _flat_index(f.size, y + jitter[0], x + jitter[1])
    img = _impulses(f.size, flat, rng.uniform(amp_low, 1.0, y.size))
    img = ndimage.gaussian_filter(img, sigma, truncate=3.0) * (2 * np.pi * sigma**2)
    return np.minimum(img, 1.0)


def _walks(rng, y0, x0, t0, n_steps, wiggle):
    """Random-walk polylines (m, n_steps) of unit steps from (y0, x0), heading t0."""
    turns = rng.standard_normal((len(y0), n_steps), dtype=np.float32) * np.float32(wiggle)
    turns[:, 0] = 0
    heading = np.cumsum(turns, axis=1) + t0[:, None].astype(np.float32)
    y = np.cumsum(np.sin(heading), axis=1) + (y0 - np.sin(t0))[:, None].astype(np.float32)
    x = np.cumsum(np.cos(heading), axis=1) + (x0 - np.cos(t0))[:, None].astype(np.float32)
    return y, x


def _flat_index(size, y, x):
    """Flat pixel index of each point, -1 outside the image."""
    yi, xi = np.rint(y).astype(np.intp), np.rint(x).astype(np.intp)
    flat = yi * size + xi
    flat[(yi < 0) | (yi >= size) | (xi < 0) | (xi >= size)] = -1
    return flat


def _lookup(img, flat):
    return np.where(flat >= 0, img.ravel()[flat], 0)


def _line_norm(sigma):
    # Peak of a blurred 1-pixel line of unit weight per step is 1 / (sqrt(2 pi) sigma).
    return np.sqrt(2 * np.pi) * sigma


def _microtubules(rng, f):
    """Filaments radiating from each cell's centrosome to its outline."""
    s = max(0.6, 0.6 * f.scale)
    flats, ws = [], []
    for k in range(len(f.nuc.r)):
        my, mx = f.nuc.point(k, 1.15, f.direction[k])
        r_cell = f.cell_shapes.r[k] * np.sqrt(f.cell_shapes.aspect[k])
        m = int(np.clip(2 * f.cell_shapes.r[k], 8, 160))  # denser asters in bigger cells
        n_steps = int(2.2 * r_cell) + 2
        t0 = rng.uniform(0, 2 * np.pi, m)
        y, x = _walks(rng, np.full(m, my), np.full(m, mx), t0, n_steps, 0.07)
        flat = _flat_index(f.size, y, x)
        code = _lookup(f.code, flat)
        # A filament ends where it first leaves its cell.
        alive = np.cumprod((code >> 1) == k + 1, axis=1).astype(bool)
        w = rng.uniform(0.25, 0.6, (m, 1)) * np.where(code & 1, 0.3, 1.0)  # dim over nucleus
        flats.append(flat[alive]), ws.append(w[alive])
    img = _impulses(f.size, np.concatenate(flats), np.concatenate(ws))
    img = ndimage.gaussian_filter(img, s, truncate=3.0) * _line_norm(s)
    return np.minimum(img, 1.0)


def _er(f, texture):
    """Reticular network, densest around the nucleus, and the nuclear envelope."""
    out_px = np.maximum(f.dnuc - 1, 0) * f.rnuc
    r_cell = np.concatenate([[1.0], f.cell_shapes.r])[f.cells]
    falloff = np.exp(-out_px / (0.45 * np.maximum(r_cell - f.rnuc, 1)))
    ridge = np.exp(-((texture / 0.45) ** 2))
    er = f.cyto * (0.2 + 0.8 * ridge) * (0.2 + 0.8 * falloff)
    return er + 0.6 * _ring(f, 1.0)


def _ring(f, width):
    w = max(0.7, width * f.scale)
    d_px = (f.dnuc - 1) * f.rnuc
    return np.where(f.cells > 0, np.exp(-0.5 * (d_px / w) ** 2), 0).astype(np.float32)


def _nucleoli(rng, f):
    """1-4 irregular bright bodies per nucleus (each two overlapping blobs)."""
    img = np.zeros((f.size, f.size), np.float32)
    for k in range(len(f.nuc.r)):
        for _ in range(rng.integers(1, 5)):
            rho, t = rng.uniform(0, 0.55), rng.uniform(0, 2 * np.pi)
            y, x = f.nuc.point(k, rho, t)
            sigma = f.nuc.r[k] * rng.uniform(0.11, 0.19)
            amp = rng.uniform(0.7, 1.0)
            _splat(img, y, x, sigma, amp)
            a = rng.uniform(0, 2 * np.pi)
            _splat(img, y + sigma * np.sin(a), x + sigma * np.cos(a), 0.8 * sigma, 0.8 * amp)
    return np.minimum(img, 1.0) * (f.nuclei > 0)


def _golgi(rng, f):
    """A compact cluster of blobs beside the nucleus, on the centrosome side."""
    img = np.zeros((f.size, f.size), np.float32)
    for k in range(len(f.nuc.r)):
        for _ in range(rng.integers(4, 10)):
            t = f.direction[k] + rng.uniform(-0.7, 0.7)
            y, x = f.nuc.point(k, rng.uniform(1.1, 1.6), t)
            _splat(img, y, x, f.nuc.r[k] * rng.uniform(0.12, 0.24), rng.uniform(0.5, 0.9))
    return np.minimum(img, 1.0) * f.cyto


def _centrosome(rng, f):
    img = np.zeros((f.size, f.size), np.float32)
    sigma = max(0.7, 1.0 * f.scale)
    for k in range(len(f.nuc.r)):
        y, x = f.nuc.point(k, 1.15, f.direction[k])
        _splat(img, y, x, sigma, 1.0)
        if rng.random() < 0.6:  # the centriole pair, sometimes resolved
            a = rng.uniform(0, 2 * np.pi)
            _splat(img, y + 2 * sigma * np.sin(a), x + 2 * sigma * np.cos(a), sigma, 0.8)
    return np.minimum(img, 1.0) * (f.cells > 0)


def _mitochondria(rng, f):
    """Short wiggly tubules in the cytoplasm, denser near the nucleus."""
    idx = np.flatnonzero(f.cyto)
    img = np.zeros((f.size, f.size), np.float32)
    if idx.size == 0:
        return img
    out_px = (np.maximum(f.dnuc - 1, 0) * f.rnuc).ravel()[idx]
    p = np.exp(-out_px / (22 * f.scale))
    m = rng.poisson(0.03 * idx.size)
    start = rng.choice(idx, m, p=p / p.sum())
    y0, x0 = np.divmod(start, f.size)
    n_steps = max(3, int(8 * f.scale))
    y, x = _walks(rng, y0, x0, rng.uniform(0, 2 * np.pi, m), n_steps, 0.35)
    length = rng.integers(2, n_steps + 1, m)
    flat = _flat_index(f.size, y, x)
    # Keep each tubule in the cytoplasm of the cell it starts in.
    own = f.code.ravel()[start][:, None]
    keep = (np.arange(n_steps) < length[:, None]) & (_lookup(f.code, flat) == own)
    w = np.broadcast_to(rng.uniform(0.6, 1.0, (m, 1)), y.shape)
    img = _impulses(f.size, flat[keep], w[keep])
    s = max(0.6, 0.7 * f.scale)
    return np.minimum(ndimage.gaussian_filter(img, s, truncate=3.0) * (1.3 * _line_norm(s)), 1.0)


# class index -> (unit pattern image, support mask); every unit image peaks near 1.
def _class_patterns(rng, f, active, ref):
    out = {}
    soft = ref["soft"]
    nucleus = f.nuclei > 0
    for c in active:
        inside = f.cyto if c in _CYTOPLASMIC else nucleus if c in _NUCLEAR else f.cells > 0
        if c == 0:
            u = nucleus * (0.8 + 0.2 * soft[0]) * (1 - 0.7 * ref["nucleoli"])
            m = nucleus
        elif c == 1:
            u = _ring(f, 1.0)
            m = u > 0.35
        elif c == 2:
            u = ref["nucleoli"]
            m = u > 0.3
        elif c == 4:
            sigma = max(0.6, 0.8 * f.scale)
            where = nucleus & (ref["nucleoli"] < 0.2)
            dots = _dots(rng, f, where, 0.02 / f.scale**2, sigma, 0.4)
            u, m = dots + 0.12 * nucleus, dots > 0.3
        elif c == 5:
            sigma = max(0.7, 1.2 * f.scale)
            where = nucleus & (ref["nucleoli"] < 0.2) & (f.dnuc < 0.85)
            u = _dots(rng, f, where, 0.004 / f.scale**2, sigma, 0.7)
            m = u > 0.3
        elif c == 6:
            u = ref["er"]
            m = (u > 0.35) & (f.cells > 0)
        elif c == 7:
            u = _golgi(rng, f)
            m = u > 0.25
        elif c == 14:
            u = ref["microtubules"]
            m = u > 0.25
        elif c == 19:
            u = _centrosome(rng, f)
            m = u > 0.3
        elif c == 21:
            u = f.edge * (0.75 + 0.25 * soft[1])
            m = f.edge
        elif c == 23:
            u = _mitochondria(rng, f)
            m = u > 0.25
        elif c == 25:
            inner = np.clip((1 - f.dcell) * 4, 0, 1)
            u = f.cyto * (0.8 + 0.2 * soft[1]) * (0.7 + 0.3 * inner)
            m = f.cyto
        else:  # pragma: no cover - _check_classes rejects these
            raise ValueError(f"No synthetic pattern for class {c}.")
        # Blurred drawings spill a pixel or two past the outline; proteins do not.
        out[c] = (np.asarray(u * inside, np.float32), np.asarray(m, bool) & inside)
    return out


# --------------------------------------------------------------------------- one sample
def _draw_labels(rng, n_classes, max_labels, weights, count_weights):
    k_max = min(max_labels, n_classes, int(np.count_nonzero(weights)))
    if count_weights is None:
        k = int(rng.integers(1, k_max + 1))
    else:
        p = np.asarray(count_weights[:k_max], float)
        k = 1 + int(rng.choice(k_max, p=p / p.sum()))
    return np.sort(rng.choice(n_classes, k, replace=False, p=weights / weights.sum()))


def _sample(rng, size, classes, n_cells, max_labels, weights, count_weights, noise, with_masks):
    """One image as (channels, rows, cols) floats in [0, 1], its labels and ground truth."""
    active_idx = _draw_labels(rng, len(classes), max_labels, weights, count_weights)
    active = [classes[i] for i in active_idx]
    f = _make_field(rng, size, int(rng.integers(n_cells[0], n_cells[1] + 1)))
    n = len(f.nuc.r)
    # Plane 0 textures nuclei (chromatin) and the ER, plane 1 the cytosol and outline:
    # each plane serves disjoint compartments or differently shaped signals.
    tex = _smooth_noise(rng, (2, size, size), max(0.8, 1.2 * f.scale))
    ref = {
        "soft": np.tanh(tex),
        "nucleoli": _nucleoli(rng, f),
        "microtubules": _microtubules(rng, f),
    }
    soft = ref["soft"]
    ref["er"] = _er(f, tex[0])

    def per_cell(low, high, dim_p=0.0):
        g = rng.uniform(low, high, n + 1)
        g[1:] *= np.where(rng.random(n) < dim_p, rng.uniform(0.15, 0.4, n), 1.0)
        g[0] = 0
        return g.astype(np.float32)[f.cells]

    nucleus = f.nuclei > 0
    blue = (nucleus * per_cell(0.55, 1.0) * (0.75 + 0.25 * soft[0])
            * (1 - 0.45 * ref["nucleoli"]))  # fmt: skip
    red = ref["microtubules"] + 0.12 * (f.cells > 0)
    yellow = np.minimum(ref["er"], 1.0)

    patterns = _class_patterns(rng, f, active, ref)
    green = np.zeros((size, size), np.float32)
    for u, _ in patterns.values():
        green += rng.uniform(0.5, 1.0) * u
    # Unspecific cell background makes absent classes less trivially absent.
    green += rng.uniform(0.0, 0.1) * (f.cells > 0)
    green *= per_cell(0.6, 1.2, dim_p=0.2)
    green /= max(1.0, float(green.max()))

    # Channel planes keep the blur's inner loop on contiguous memory.
    clean = np.stack([red, green, blue, yellow]).astype(np.float32, copy=False)
    psf = max(0.5, 0.8 * f.scale)
    img = ndimage.gaussian_filter(clean, (0, psf, psf), truncate=3.0)
    img *= rng.uniform([0.45, 0.35, 0.6, 0.45], [0.85, 1.0, 0.95, 0.85])[:, None, None]
    img += rng.uniform(0.005, 0.03, 4)[:, None, None]
    # Shot-noise-like: deviation ``noise`` at full intensity, a fifth of it in the dark.
    sd = np.sqrt(0.04 + 0.96 * np.maximum(img, 0)) * np.float32(noise)
    sd *= rng.standard_normal(img.shape, np.float32)
    img += sd
    np.clip(img, 0, 1, out=img)

    y = np.zeros(len(classes), np.uint8)
    y[active_idx] = 1
    if not with_masks:
        return img, y, None
    pattern_masks = np.zeros((len(classes), size, size), bool)
    for i in active_idx:
        pattern_masks[i] = patterns[classes[i]][1]
    return img, y, (f.nuclei, f.cells, pattern_masks)


# --------------------------------------------------------------------------- public
@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "classes": ["array-like", None],
        "image_size": [Interval(Integral, _MIN_IMAGE_SIZE, None, closed="left")],
        "n_cells": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "max_labels": [Interval(Integral, 1, None, closed="left")],
        "imbalance": [None, StrOptions({"hpa2018"}), "array-like"],
        "noise": [Interval(Real, 0, None, closed="left")],
        "dtype": [StrOptions({"uint8", "uint16"})],
        "return_masks": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_synthetic_hpa(
    n_samples=100,
    *,
    classes=None,
    image_size=256,
    n_cells=(3, 8),
    max_labels=3,
    imbalance=None,
    noise=0.05,
    dtype="uint8",
    return_masks=False,
    random_state=None,
):
    """Generate synthetic 4-channel HPA-like fields with multi-label localizations.

    Each image is a field of ``n_cells`` irregular (perturbed elliptical),
    non-overlapping cells that touch their neighbours, each with one nucleus.
    Channels follow :data:`protloc.io.DEFAULT_CHANNELS`:

    - red: microtubule filaments radiating from a centrosome beside the nucleus;
    - green: the sum of the sample's class patterns in every cell, with per-cell
      intensity variation (about one cell in five is dim) and a weak unspecific
      cell background;
    - blue: textured DAPI-like nuclei, dimmer at the nucleoli;
    - yellow: reticular ER, densest around the nucleus, plus the nuclear envelope.

    All channels get an offset background, a blur and Gaussian noise. Class
    patterns (HPA 2018 index: look):

    ==== ======================== ==================================================
    0    Nucleoplasm              diffuse nuclear, nucleoli excluded
    1    Nuclear membrane         thin ring at the nucleus edge
    2    Nucleoli                 1-4 irregular bright bodies per nucleus
    4    Nuclear speckles         many small nuclear dots over a faint nucleoplasm
    5    Nuclear bodies           a few brighter nuclear dots
    6    Endoplasmic reticulum    follows the yellow channel
    7    Golgi apparatus          compact blob cluster on one side of the nucleus
    14   Microtubules             follows the red channel
    19   Centrosome               one or two dots at the microtubule centre
    21   Plasma membrane          band along the cell outline
    23   Mitochondria             short tubules in the cytoplasm, denser inside
    25   Cytosol                  diffuse cytoplasm
    ==== ======================== ==================================================

    Sample ``i`` depends only on ``random_state`` and ``i``, so the first ``k``
    samples of a larger call equal a call with ``n_samples=k``.

    Parameters
    ----------
    n_samples : int, default=100
        Number of images.
    classes : sequence of int, default=None
        HPA 2018 class indices to simulate, a subset of :data:`SYNTHETIC_CLASSES`
        (``None``: all of them). Column ``j`` of ``Y`` is ``classes[j]``.
    image_size : int, default=256
        Rows and columns of each image (at least 32). Cell size scales with it.
    n_cells : int or (int, int), default=(3, 8)
        Cells per image, or the inclusive range it is drawn from. Cells that do
        not fit (many cells in a small image) are left out, so this is a maximum.
    max_labels : int, default=3
        Maximum classes per image (capped at ``len(classes)``); every image has at
        least one.
    imbalance : None, "hpa2018" or array-like of shape (len(classes),), default=None
        Class frequencies. ``None``: uniform class choice and a uniform number of
        labels in ``1..max_labels``. ``"hpa2018"``: class weights and the
        labels-per-image distribution of the real HPA 2018 training set
        (:data:`HPA2018_CLASS_COUNTS`, :data:`HPA2018_LABELS_PER_IMAGE`,
        truncated at ``max_labels``). An array: per-class weights, with the
        uniform label count of ``None``. Classes of an image are drawn without
        replacement with these weights.
    noise : float, default=0.05
        Standard deviation of the Gaussian noise at full intensity, as a fraction
        of the intensity range. It scales like shot noise, with the square root of
        the signal, down to a fifth of ``noise`` on the dark background.
    dtype : {"uint8", "uint16"}, default="uint8"
        Image dtype; intensities span its full range.
    return_masks : bool, default=False
        Also return the ground truth.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X : ndarray of shape (n_samples, image_size, image_size, 4)
        Images, channels ("red", "green", "blue", "yellow").
    Y : ndarray of shape (n_samples, len(classes)), dtype uint8
        0/1 label indicator matrix; every row has at least one 1.
    masks : :class:`~sklearn.utils.Bunch`
        Only when ``return_masks=True``, with

        - ``nuclei``: int32 (n_samples, rows, cols), 0 = background, cell ``k``'s
          nucleus has label ``k`` (labels 1..cells in that image);
        - ``cells``: int32 (n_samples, rows, cols), same labels as the nuclei;
        - ``patterns``: bool (n_samples, len(classes), rows, cols), where each
          active class's green pattern lies before blurring (all False for
          classes the image does not have);
        - ``classes``: the class indices, ``class_names``: their HPA names,
          ``channels``: the channel names.

    See Also
    --------
    synthetic_class_names : HPA names of the columns of ``Y``.
    protloc.io.load_hpa : the same arrays from real HPA images.

    Examples
    --------
    >>> from protloc.datasets import make_synthetic_hpa
    >>> X, Y = make_synthetic_hpa(4, classes=[0, 25], image_size=64, random_state=0)
    >>> X.shape, X.dtype, Y.shape
    ((4, 64, 64, 4), dtype('uint8'), (4, 2))
    >>> bool(Y.sum(axis=1).min() >= 1)
    True
    >>> X, Y, masks = make_synthetic_hpa(2, image_size=64, return_masks=True, random_state=0)
    >>> masks.patterns.shape
    (2, 12, 64, 64)
    """
    classes = _check_classes(classes)
    n_cells = _check_n_cells(n_cells)
    weights, count_weights = _check_weights(imbalance, classes)

    rs = check_random_state(random_state)
    # One independent stream per sample keeps samples stable when n_samples changes.
    seeds = np.random.SeedSequence(rs.randint(0, 2**31 - 1, size=4).tolist()).spawn(n_samples)

    top = np.iinfo(dtype).max
    X = np.empty((n_samples, image_size, image_size, len(DEFAULT_CHANNELS)), dtype)
    Y = np.zeros((n_samples, len(classes)), np.uint8)
    if return_masks:
        nuclei = np.zeros((n_samples, image_size, image_size), np.int32)
        cells = np.zeros_like(nuclei)
        patterns = np.zeros((n_samples, len(classes), image_size, image_size), bool)
    for i, seed in enumerate(seeds):
        img, Y[i], truth = _sample(
            np.random.default_rng(seed), image_size, classes, n_cells,
            max_labels, weights, count_weights, noise, return_masks,
        )  # fmt: skip
        img *= top
        X[i] = np.rint(img).transpose(1, 2, 0)
        if return_masks:
            nuclei[i], cells[i], patterns[i] = truth
    if not return_masks:
        return X, Y
    masks = Bunch(
        nuclei=nuclei,
        cells=cells,
        patterns=patterns,
        classes=classes,
        class_names=synthetic_class_names(classes),
        channels=DEFAULT_CHANNELS,
    )
    return X, Y, masks
