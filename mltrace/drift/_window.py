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
    """The last ``size`` rows of bin codes, with per-feature code counts.

    A row is written into the ring and its count update deferred: :meth:`fold` adds the pending
    rows' counts and takes the evicted rows' out with two ``bincount`` calls, at most every
    ``PENDING`` (64) rows and before anything reads :attr:`counts` or :attr:`totals`. The rows the
    next pushes will evict are known at each fold (the ``PENDING`` slots ahead of the write
    position), so the fold copies them aside then, in one block, instead of each push copying the
    row it overwrites (0.5 us a request at 100 features). Updating counts row by row by fancy
    indexing cost ~3 us a request; folding 64 rows costs ~15 us, once.
    """

    #: rows pushed before the counts must be folded (bounds the evicted-rows buffer)
    PENDING = 64

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
        #: rows (of ``seen``) whose codes are in :attr:`totals` and the window counts
        self.folded = 0
        self._cap = min(size, self.PENDING)
        #: the rows in the ``_cap`` slots from ``_ahead_pos`` as they were at the last fold: what the
        #: pushes since then overwrote (the slots are each written at most once between folds)
        self._evicted = np.zeros((self._cap, m), dtype=dtype)
        self._ahead_pos = 0
        self._ahead_full = False

    @property
    def counts(self) -> IntArray:
        """``(features, codes)`` counts of the codes in the window (a view; copy before unlocking).
        Folds pending rows first."""
        self.fold()
        return self.flat_counts.reshape(self.m, self.n_codes)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.flat_counts.nbytes + self.offsets.nbytes + self._evicted.nbytes)

    def push(self, rows: IntArray) -> None:
        """Add ``(b, features)`` codes, evicting the oldest rows once the window is full."""
        self.push_flat(rows + self.offsets)

    def push_one(self, row: IntArray, flat: IntArray) -> None:
        """Add one row of codes whose flat indices (``offsets + row``) the caller already has."""
        self.push_row(flat)

    def push_flat(self, flat: IntArray) -> None:
        """Add ``(b, features)`` rows given as flat indices ``offsets + codes``."""
        b = flat.shape[0]
        if b == 1:
            self.push_row(flat[0])
            return
        self.fold()  # a batch counts at once (one bincount serves the window and the totals)
        self.seen += b
        self.folded = self.seen
        added = np.bincount(flat.ravel(), minlength=self.totals.size)
        self.totals += added
        if b >= self.size:
            kept = flat[-self.size :]
            np.subtract(kept, self.offsets, out=self.codes, casting="unsafe")
            self.flat_counts[:] = np.bincount(kept.ravel(), minlength=self.flat_counts.size)
            self.pos, self.fill = 0, self.size
            self._look_ahead()
            return
        slots = (self.pos + np.arange(b)) % self.size
        occupied = slots < self.fill if self.fill < self.size else np.ones(b, dtype=bool)
        if occupied.any():
            old = self.codes[slots[occupied]].astype(np.int64) + self.offsets
            self.flat_counts -= np.bincount(old.ravel(), minlength=self.flat_counts.size)
        self.flat_counts += added
        self.codes[slots] = flat - self.offsets
        self.pos = (self.pos + b) % self.size
        self.fill = min(self.size, self.fill + b)
        self._look_ahead()

    def push_row(self, flat: IntArray) -> None:
        """One row: write it, keep the row it evicts; counts wait for :meth:`fold`."""
        if self.seen - self.folded >= self._cap:
            self.fold()
        pos = self.pos
        if self.fill < self.size:
            self.fill += 1
        np.subtract(flat, self.offsets, out=self.codes[pos], casting="unsafe")
        self.pos = pos + 1 if pos + 1 < self.size else 0
        self.seen += 1

    def clear(self) -> None:
        self.fold()
        self.flat_counts[:] = 0
        self.pos = self.fill = 0
        self._look_ahead()

    def fold(self) -> None:
        """Count the rows pushed since the last fold (all still in the ring) into the window counts
        and :attr:`totals`, and take the rows they evicted out of the window counts."""
        k = self.seen - self.folded
        if k > 0:
            if k <= self.pos:  # the newest k rows, contiguous
                newest = self.codes[self.pos - k : self.pos]
            else:
                newest = self.codes[(self.pos - 1 - np.arange(k)) % self.size]
            added = np.bincount((newest + self.offsets).ravel(), minlength=self.totals.size)
            self.totals += added
            self.flat_counts += added
            self.folded = self.seen
            # push i overwrote slot ahead_pos + i: a row when the window was full at the last fold,
            # else only once the writes wrapped to slot 0 (until full, the write position is the fill)
            first = 0 if self._ahead_full else self.size - self._ahead_pos
            if first < k:
                gone = self._evicted[first:k] + self.offsets
                self.flat_counts -= np.bincount(gone.ravel(), minlength=self.flat_counts.size)
            self._look_ahead()

    def _look_ahead(self) -> None:
        """Copy aside the rows in the slots the next ``_cap`` pushes will overwrite."""
        pos, cap = self.pos, self._cap
        self._ahead_pos = pos
        self._ahead_full = full = self.fill == self.size
        if pos + cap <= self.size:
            if full:
                self._evicted[:] = self.codes[pos : pos + cap]
        else:  # the slots wrap to 0, which holds a row whether or not the window is full
            split = self.size - pos
            self._evicted[:split] = self.codes[pos:]
            self._evicted[split:] = self.codes[: cap - split]


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
