"""Mergeable summaries of traffic: latency histograms, uniform samples, prediction kinds.

Every summary here merges exactly (counts add) or as well as a uniform sample can (two
uniform samples merge into a uniform sample of the union), so one minute's window can be
flushed many times and any range of windows combined at query time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: Latency bucket edges in seconds: geometric, x1.1 from 0.1 ms to ~100 s (a percentile is
#: exact within 10 %). Bucket ``i`` holds ``[EDGES[i-1], EDGES[i])``; 0 below the first
#: edge, ``len(EDGES)`` above the last.
LATENCY_FACTOR = 1.1
LATENCY_MIN = 1e-4
LATENCY_EDGES: np.ndarray = LATENCY_MIN * LATENCY_FACTOR ** np.arange(146)
#: Distinct prediction classes kept per window; the rest count as ``OTHER``.
MAX_CLASSES = 100
OTHER = "__other__"


def latency_bucket(seconds: float) -> int:
    """The bucket index of one latency."""
    if not seconds > LATENCY_MIN:
        return 0
    index = int(math.log(seconds / LATENCY_MIN) / math.log(LATENCY_FACTOR)) + 1
    return min(index, len(LATENCY_EDGES))


def merge_counts(into: dict[str, int], more: Mapping[str, int], limit: int | None = None) -> None:
    """Add ``more``'s counts to ``into``; beyond ``limit`` keys, new keys go to ``OTHER``."""
    for key, count in more.items():
        if key in into or limit is None or len(into) < limit:
            into[key] = into.get(key, 0) + int(count)
        else:
            into[OTHER] = into.get(OTHER, 0) + int(count)


def percentiles(buckets: Mapping[str, int], qs: Sequence[float]) -> list[float | None]:
    """Percentiles (0-100) of latencies summarised as bucket counts; the geometric middle
    of the bucket the rank falls in. None when there is nothing."""
    if not buckets:
        return [None for _ in qs]
    idx = np.array(sorted(int(k) for k in buckets), dtype=np.int64)
    counts = np.array([int(buckets[str(i)]) for i in idx], dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return [None for _ in qs]
    cumulative = np.cumsum(counts)
    edges = np.concatenate(([0.0], LATENCY_EDGES, [LATENCY_EDGES[-1] * LATENCY_FACTOR]))
    out: list[float | None] = []
    for q in qs:
        rank = max(1.0, math.ceil(q / 100.0 * total))
        bucket = int(idx[int(np.searchsorted(cumulative, rank))])
        low, high = edges[bucket], edges[bucket + 1]
        out.append(float(math.sqrt(low * high)) if low > 0 else float(high / 2))
    return out


def merge_samples(
    a: list[Any], seen_a: float, b: list[Any], seen_b: float, size: int, rng: random.Random
) -> list[Any]:
    """A uniform sample of at most ``size`` items of the union of two populations, from a
    uniform sample of each (``seen_*``: the populations' sizes)."""
    total = seen_a + seen_b
    if total <= 0 or size <= 0:
        return []
    k = min(size, len(a) + len(b))
    if len(a) + len(b) <= size and len(a) == seen_a and len(b) == seen_b:
        return a + b
    # How many of the k come from a: hypergeometric draw, bounded by what each sample holds.
    from_a = 0
    remaining_a, remaining = seen_a, total
    for _ in range(k):
        if rng.random() * remaining < remaining_a:
            from_a += 1
            remaining_a -= 1
        remaining -= 1
    from_a = min(from_a, len(a))
    from_b = min(k - from_a, len(b))
    return rng.sample(a, from_a) + rng.sample(b, from_b)


class Reservoir:
    """A uniform sample of at most ``size`` of the items offered (Li's algorithm L: once
    full, the index of the next item to keep is drawn ahead, so the items in between cost
    nothing but a count)."""

    __slots__ = ("_next", "_w", "items", "rng", "seen", "size")

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rng = rng
        self.items: list[Any] = []
        self.seen = 0
        self._w = 1.0
        self._next = 0

    def _advance(self) -> None:
        """Draw the (0-based) index of the next item to keep."""
        rng = self.rng
        self._w *= math.exp(math.log(rng.random() or 1e-300) / self.size)
        gap = math.log(rng.random() or 1e-300) / math.log1p(-self._w) if self._w < 1 else 0.0
        self._next += int(gap) + 1

    def offer(self, values: Sequence[Any]) -> None:
        """Offer every item of ``values``."""
        n = len(values)
        if n == 0 or self.size <= 0:
            self.seen += n
            return
        start = self.seen
        index = 0
        room = self.size - len(self.items)
        if room > 0:
            taken = values[:room]
            self.items.extend(taken)
            index = len(taken)
            if len(self.items) == self.size:
                self._next = start + index - 1
                self._advance()
        while True:
            position = self._next - start  # where in ``values`` the next kept item is
            if len(self.items) < self.size or position >= n:
                break
            if position >= index:
                self.items[self.rng.randrange(self.size)] = values[position]
                index = position + 1
            self._advance()
        self.seen += n


def split_predictions(outputs: Iterable[Any]) -> tuple[list[float], dict[str, int]]:
    """Numbers (to a histogram) and classes (counted) among predictions.

    Floats are numbers; strings and booleans are classes; integers are both (a classifier's
    labels or a count: the report decides by what else it sees). A list of numbers (class
    probabilities) counts as its arg-max class; a dict by its first value; None is skipped.
    """
    numbers: list[float] = []
    ints: dict[int, int] = {}
    others: dict[str, int] = {}
    for value in outputs:
        kind = type(value)
        if kind is float:
            if math.isfinite(value):
                numbers.append(value)
            continue
        if kind is int:
            numbers.append(float(value))
            ints[value] = ints.get(value, 0) + 1
            continue
        if isinstance(value, dict):
            value = next(iter(value.values()), None)
        if isinstance(value, list | tuple):
            if value and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                value = int(np.argmax(value)) if len(value) > 1 else value[0]
            else:
                value = value[0] if len(value) == 1 else None
        if value is None:
            continue
        if isinstance(value, bool | str):
            key = str(value)
            others[key] = others.get(key, 0) + 1
        elif isinstance(value, int | np.integer):
            numbers.append(float(value))
            ints[int(value)] = ints.get(int(value), 0) + 1
        elif isinstance(value, float | np.floating) and math.isfinite(value):
            numbers.append(float(value))
    classes = {str(k): c for k, c in ints.items()}
    for key, count in others.items():
        classes[key] = classes.get(key, 0) + count
    return numbers, classes


def pick(weights: Sequence[float], k: int, rng: random.Random) -> dict[int, float]:
    """Which of some windows to read samples from, and the population each stands for.

    Up to ``k`` windows: every one with anything in it, standing for itself (its weight).
    More: ``k`` draws with probability proportional to the weights (with replacement), each
    standing for ``total / k``, so a long period costs ``k`` samples, not one per minute.
    Returns index -> population.
    """
    total = float(sum(weights))
    if total <= 0:
        return {}
    if len(weights) <= k:
        return {i: float(w) for i, w in enumerate(weights) if w > 0}
    out: dict[int, float] = {}
    for i in rng.choices(range(len(weights)), weights=weights, k=k):
        out[i] = out.get(i, 0.0) + total / k
    return out
