"""Distinct rows with counts: the grouped sufficient statistics every fit runs on."""

import math
from typing import Any

import numpy as np


def unique_rows(
    *columns: Any, return_inverse: bool = True
) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray]:
    """Distinct rows of equal-length 1-d arrays: (distinct columns, inverse index, counts).

    `distinct[k][inverse]` rebuilds column k. Rows come out in lexicographic order. Each column is
    turned into integer codes (directly for small whole numbers, else by sorting its values), the
    codes are combined into one int64 key, and the key is counted (small key space) or sorted.
    With `return_inverse=False` (a fit needs only the rows and their counts) the inverse is None
    and the key is sorted instead of arg-sorted.
    """
    cols = [np.asarray(c, dtype=float).ravel() for c in columns]
    n = cols[0].shape[0]
    if n == 0:
        return [c[:0] for c in cols], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes, sizes, values = [], [], []
    for c in cols:
        lo, hi = float(c.min()), float(c.max())
        if math.isfinite(lo) and math.isfinite(hi) and hi - lo < 1e7 and (c == np.round(c)).all():
            codes.append((c - lo).astype(np.int64))
            sizes.append(int(hi - lo) + 1)
            values.append(None)
        else:  # arbitrary floats: codes by value (NaN sorts last, one code)
            uniq, code = np.unique(c, return_inverse=True)
            codes.append(code.astype(np.int64).ravel())
            sizes.append(int(uniq.shape[0]))
            values.append(uniq)
    if math.prod(sizes) >= 2**62:
        return _unique_rows_lexsort(cols)
    key = codes[0]
    for code, size in zip(codes[1:], sizes[1:], strict=True):
        key = key * size + code
    space = math.prod(sizes)
    if space <= max(4 * n, 1 << 20):
        counts_all = np.bincount(key, minlength=space)
        present = np.flatnonzero(counts_all)
        inverse = None
        if return_inverse:
            group = np.zeros(space, dtype=np.int64)
            group[present] = np.arange(present.shape[0])
            inverse = group[key]
        counts = counts_all[present]
        ukey = present.astype(np.int64)
    elif return_inverse:
        ukey, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
    else:
        ukey, counts = np.unique(key, return_counts=True)
        inverse = None
    out = []
    for c, size, uniq in zip(cols[::-1], sizes[::-1], values[::-1], strict=True):
        code = ukey % size
        ukey = ukey // size
        out.append(uniq[code] if uniq is not None else code + c.min())
    return out[::-1], inverse, counts


def merge_rows(*columns: Any, counts: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """Rows that each stand for `counts` customers (grouped elsewhere, e.g. by Spark; in any
    order, a row may repeat) as `unique_rows` would give them from one row per customer:
    (distinct columns in lexicographic order, customers per row). Rows with count 0 are dropped.
    """
    cols = [np.asarray(c, dtype=float).ravel() for c in columns]
    k = np.asarray(counts).ravel()
    if any(c.shape != k.shape for c in cols):
        raise ValueError("every column and the counts must have the same length")
    if k.size and (k.min() < 0 or (k != np.round(k)).any()):
        raise ValueError("counts must be whole numbers >= 0")
    k = k.astype(np.int64)
    present = k > 0
    if present.all() and _strictly_increasing(cols):
        return cols, k  # already distinct and in order (e.g. `unique_rows`' own output)
    cols, k = [c[present] for c in cols], k[present]
    if k.shape[0] == 0:
        return cols, k
    order = np.lexsort(cols[::-1])
    cols, k = [c[order] for c in cols], k[order]
    new = np.zeros(k.shape[0], dtype=bool)
    new[0] = True
    for c in cols:
        # NaN != NaN: equal NaNs stay one row, as np.unique puts them
        new[1:] |= (c[1:] != c[:-1]) & ~(np.isnan(c[1:]) & np.isnan(c[:-1]))
    starts = np.flatnonzero(new)
    return [c[starts] for c in cols], np.add.reduceat(k, starts)


def _strictly_increasing(cols: list[np.ndarray]) -> bool:
    """Whether every row is lexicographically greater than the one before (so the rows are
    distinct and sorted as `unique_rows` sorts them); False with a NaN in a column."""
    n = cols[0].shape[0]
    if n < 2:
        return n == 1 and not any(np.isnan(c).any() for c in cols)
    greater = np.zeros(n - 1, dtype=bool)
    decided = np.zeros(n - 1, dtype=bool)
    for c in cols:
        up, down = c[1:] > c[:-1], c[1:] < c[:-1]
        greater |= up & ~decided
        decided |= up | down
    return bool(greater.all()) and not any(np.isnan(c[0]) for c in cols)


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each value in them) of a 1-d array: `np.unique` with
    `return_inverse`, counted instead of sorted for whole numbers in a small range (days)."""
    (distinct,), inverse, _ = unique_rows(values)
    assert inverse is not None
    return distinct, inverse


def _unique_rows_lexsort(cols: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    n = cols[0].shape[0]
    order = np.lexsort(cols[::-1])
    sorted_cols = [c[order] for c in cols]
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for c in sorted_cols:
        new[1:] |= c[1:] != c[:-1]
    group_of_sorted = np.cumsum(new) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group_of_sorted
    counts = np.bincount(group_of_sorted)
    return [c[new] for c in sorted_cols], inverse, counts
