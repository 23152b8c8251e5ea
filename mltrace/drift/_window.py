"""Bounded windows of recent traffic: a ring of bin codes with running counts, and a ring of vectors.

Memory is fixed when the window is made (``size x features`` codes of one or two bytes, plus
``features x codes`` counts); nothing grows with traffic.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._errors import InvalidArgumentError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class CodeRing:
    """The last ``size`` rows of bin codes, with per-feature code counts kept up to date."""

    def __init__(self, size: int, m: int, n_codes: int, dtype: type[np.unsignedinteger]) -> None:  # type: ignore[type-arg]
        if size < 1:
            raise InvalidArgumentError(f"window must be at least 1; got {size}")
        self.size = size
        self.m = m
        self.n_codes = n_codes
        self.codes = np.zeros((size, m), dtype=dtype)
        self.flat_counts = np.zeros(m * n_codes, dtype=np.int64)
        self.offsets = np.arange(m, dtype=np.int64) * n_codes
        self.pos = 0
        self.fill = 0
        self.seen = 0
        #: cumulative code counts since construction (never decrease): what replicas export for the
        #: fleet's merged drift (mltrace.export._drift_metrics). Folded in from the ring lazily, by
        #: fold(), before any row could be evicted unfolded, so the hot path adds one comparison.
        self.totals = np.zeros(m * n_codes, dtype=np.int64)
        self.folded = 0

    @property
    def counts(self) -> IntArray:
        """``(features, codes)`` counts of the codes in the window (a view; copy before unlocking)."""
        return self.flat_counts.reshape(self.m, self.n_codes)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.flat_counts.nbytes + self.offsets.nbytes)

    def push(self, rows: IntArray) -> None:
        """Add ``(b, features)`` codes, evicting the oldest rows once the window is full."""
        b = rows.shape[0]
        if b == 1:
            self.push_one(rows[0], rows[0] + self.offsets)
            return
        if self.seen - self.folded + b > self.size:  # these rows would evict unfolded ones
            self.fold()
            self.totals += np.bincount((rows + self.offsets).ravel(), minlength=self.totals.size)
            self.folded += b
        self.seen += b
        if b >= self.size:
            self.codes[:] = rows[-self.size :]
            self.flat_counts[:] = np.bincount((self.offsets + self.codes).ravel(), minlength=self.flat_counts.size)
            self.pos, self.fill = 0, self.size
            return
        slots = (self.pos + np.arange(b)) % self.size
        occupied = slots < self.fill if self.fill < self.size else np.ones(b, dtype=bool)
        if occupied.any():
            old = self.codes[slots[occupied]].astype(np.int64) + self.offsets
            self.flat_counts -= np.bincount(old.ravel(), minlength=self.flat_counts.size)
        self.flat_counts += np.bincount((rows + self.offsets).ravel(), minlength=self.flat_counts.size)
        self.codes[slots] = rows
        self.pos = (self.pos + b) % self.size
        self.fill = min(self.size, self.fill + b)

    def push_one(self, row: IntArray, flat: IntArray) -> None:
        """Add one row of codes whose flat indices (``offsets + row``) the caller already has."""
        if self.seen - self.folded >= self.size:
            self.fold()
        self.seen += 1
        if self.fill == self.size:
            self.flat_counts[self.offsets + self.codes[self.pos]] -= 1
        else:
            self.fill += 1
        self.flat_counts[flat] += 1
        self.codes[self.pos] = row
        self.pos = (self.pos + 1) % self.size

    def clear(self) -> None:
        self.fold()
        self.flat_counts[:] = 0
        self.pos = self.fill = 0

    def fold(self) -> None:
        """Add the rows pushed since the last fold (all still in the ring) to :attr:`totals`."""
        k = self.seen - self.folded
        if k <= 0:
            return
        slots = (self.pos - 1 - np.arange(k)) % self.size  # the newest k rows
        self.totals += np.bincount(
            (self.codes[slots].astype(np.int64) + self.offsets).ravel(), minlength=self.totals.size
        )
        self.folded = self.seen


class VectorRing:
    """The last ``size`` finite vectors (float32), for a window centroid."""

    def __init__(self, size: int, dim: int) -> None:
        self.size = size
        self.vectors = np.zeros((size, dim), dtype=np.float32)
        self.pos = 0
        self.fill = 0

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes)

    def push(self, rows: FloatArray) -> None:
        finite = rows[np.isfinite(rows).all(axis=1)]
        if len(finite) >= self.size:
            self.vectors[:] = finite[-self.size :]
            self.pos, self.fill = 0, self.size
            return
        for row in finite:
            self.vectors[self.pos] = row
            self.pos = (self.pos + 1) % self.size
            self.fill = min(self.size, self.fill + 1)

    def mean(self) -> FloatArray | None:
        if self.fill == 0:
            return None
        return np.asarray(self.vectors[: self.fill].mean(axis=0, dtype=np.float64), dtype=np.float64)

    def clear(self) -> None:
        self.pos = self.fill = 0
