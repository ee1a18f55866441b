"""Downsampling a long metric series for a chart, so 1M points never cross the wire.

Two methods, both on buckets of equal point counts, both keeping the first and last point:

* ``lttb``, Largest-Triangle-Three-Buckets (S. Steinarsson, "Downsampling Time Series for
  Visual Representation", MSc thesis, University of Iceland, 2013): one point per bucket,
  the one making the largest triangle with the point kept before it and the next bucket's
  average, which keeps the series' visual shape;
* ``minmax``: the lowest and the highest point of each bucket (in step order), so no
  spike or dip is ever lost.

Both return indices into the input, so the caller keeps steps, values and timestamps
together. Non-finite values (NaN, infinities) are left out before downsampling.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

import numpy as np
import numpy.typing as npt

Method = Literal["lttb", "minmax"]
Indices = npt.NDArray[np.int64]


def _edges(n_points: int, buckets: int) -> npt.NDArray[np.int64]:
    return np.linspace(0, n_points, buckets + 1).astype(np.int64)


def lttb(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], n_out: int) -> Indices:
    """Indices of at most ``n_out`` (≥ 3) points chosen by LTTB, in order."""
    n = len(x)
    if n <= n_out:
        return np.arange(n, dtype=np.int64)
    # The first and last points stay; the points between them fill n_out - 2 buckets.
    edges = _edges(n - 2, n_out - 2) + 1
    chosen = np.empty(n_out, dtype=np.int64)
    chosen[0], chosen[-1] = 0, n - 1
    a = 0
    for i in range(n_out - 2):
        lo, hi = edges[i], edges[i + 1]
        if i + 2 < len(edges):
            nlo, nhi = edges[i + 1], edges[i + 2]
            cx, cy = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        else:
            cx, cy = x[-1], y[-1]
        ax, ay = x[a], y[a]
        area = np.abs((ax - cx) * (y[lo:hi] - ay) - (ax - x[lo:hi]) * (cy - ay))
        a = lo + int(np.argmax(area))
        chosen[i + 1] = a
    return chosen


def minmax(y: npt.NDArray[np.float64], n_out: int) -> Indices:
    """Indices of each bucket's lowest and highest point (``n_out // 2`` buckets), in order,
    with the first and last point."""
    n = len(y)
    if n <= n_out:
        return np.arange(n, dtype=np.int64)
    buckets = max(1, (n_out - 2) // 2)
    edges = _edges(n, buckets)
    picked = [0, n - 1]
    for lo, hi in pairwise(edges.tolist()):
        if hi > lo:
            part = y[lo:hi]
            picked.append(lo + int(np.argmin(part)))
            picked.append(lo + int(np.argmax(part)))
    return np.unique(np.asarray(picked, dtype=np.int64))


def downsample(
    steps: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    n_out: int,
    method: Method = "lttb",
) -> Indices:
    """Indices of the points to draw: finite values only, at most ``n_out`` of them."""
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) <= n_out:
        return finite.astype(np.int64)
    x = steps[finite].astype(np.float64)
    y = values[finite]
    picked = lttb(x, y, n_out) if method == "lttb" else minmax(y, n_out)
    return finite[picked].astype(np.int64)
