"""Pairs of archive items and the candidate pool the strategies choose from.

A pair is two int64 indices into the embedding matrix with ``i < j``. Sets of pairs are compared
through int64 keys ``(i << 32) | j``: the key does not depend on the archive size, so two ``Pairs``
built from different contexts still compare correctly (indices must stay below 2**31).
The pool never materialises the N x N matrix: it is the union of each item's k nearest neighbours
(FAISS) and uniformly random pairs, both O(N k + m) in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SHIFT = np.int64(32)
_LOW = np.int64((1 << 32) - 1)
MAX_ITEMS = 1 << 31


def _as_index(a: np.ndarray | list[int]) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64).reshape(-1)


@dataclass(frozen=True, eq=False)
class Pairs:
    """Two parallel int64 index arrays. Build with :meth:`from_arrays` to enforce the contract."""

    i: np.ndarray
    j: np.ndarray

    def __post_init__(self) -> None:
        if self.i.shape != self.j.shape or self.i.ndim != 1:
            raise ValueError(f"i and j must be 1-D of equal length, got {self.i.shape} and {self.j.shape}")

    @classmethod
    def empty(cls) -> Pairs:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64))

    @classmethod
    def from_arrays(cls, i: np.ndarray | list[int], j: np.ndarray | list[int]) -> Pairs:
        """Canonical pairs: swapped to ``i < j``, self pairs dropped, duplicates dropped (first kept)."""
        return cls(_as_index(i), _as_index(j)).canonical()

    @classmethod
    def from_keys(cls, keys: np.ndarray) -> Pairs:
        keys = _as_index(keys)
        return cls(keys >> _SHIFT, keys & _LOW)

    def __len__(self) -> int:
        return int(self.i.shape[0])

    def __eq__(self, other: object) -> bool:
        """Same pairs in the same order."""
        if not isinstance(other, Pairs):
            return NotImplemented
        return np.array_equal(self.i, other.i) and np.array_equal(self.j, other.j)

    def keys(self) -> np.ndarray:
        """int64 key per pair, ``(i << 32) | j``; equal keys <=> equal canonical pairs."""
        if len(self) and (self.i.max() >= MAX_ITEMS or self.j.max() >= MAX_ITEMS or self.i.min() < 0):
            raise ValueError("pair indices must lie in [0, 2**31)")
        return (self.i << _SHIFT) | self.j

    def canonical(self) -> Pairs:
        """``i < j``, no self pairs, no duplicates; the order of first occurrence is kept."""
        lo, hi = np.minimum(self.i, self.j), np.maximum(self.i, self.j)
        keep = lo != hi
        keys = Pairs(lo[keep], hi[keep]).keys()
        _, first = np.unique(keys, return_index=True)
        return Pairs.from_keys(keys[np.sort(first)])

    def take(self, idx: np.ndarray) -> Pairs:
        return Pairs(self.i[idx], self.j[idx])

    def mask_in(self, other: Pairs) -> np.ndarray:
        """Boolean mask of the pairs of ``self`` that also occur in ``other`` (both canonical)."""
        if not len(self) or not len(other):
            return np.zeros(len(self), bool)
        return np.isin(self.keys(), other.keys())

    def difference(self, other: Pairs | None) -> Pairs:
        """Pairs of ``self`` not in ``other``, order kept."""
        if other is None or not len(other):
            return self
        return self.take(~self.mask_in(other))

    def concat(self, other: Pairs) -> Pairs:
        """Union in order (self first), canonicalised."""
        return Pairs(np.concatenate([self.i, other.i]), np.concatenate([self.j, other.j])).canonical()


def n_all_pairs(n_items: int) -> int:
    return n_items * (n_items - 1) // 2


def pair_from_linear(k: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Map linear indices in ``[0, N(N-1)/2)`` to upper-triangle pairs, row-major (vectorised).

    Row ``i`` holds ``N-1-i`` pairs and starts at ``S(i) = i (2N - i - 1) / 2``; the float estimate
    of the inverse is corrected by one step either way, which is exact for N < 2**31.
    """
    k = _as_index(k)
    n = np.int64(n_items)

    def start(i: np.ndarray) -> np.ndarray:
        return i * (2 * n - i - 1) // 2

    b = 2.0 * n_items - 1.0
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * k, 0.0))) / 2.0).astype(np.int64)
    i = np.clip(i, 0, n - 2)
    i -= (start(i) > k).astype(np.int64)
    i += (start(i + 1) <= k).astype(np.int64)
    j = k - start(i) + i + 1
    return i, j


def random_pairs(n_items: int, m: int, rng: np.random.Generator, exclude: Pairs | None = None) -> Pairs:
    """``m`` distinct pairs drawn uniformly from all ``N(N-1)/2`` pairs, none in ``exclude``.

    Sampling is without replacement over linear pair indices (numpy uses a hash-set algorithm when
    ``m`` is small against the population, so no big array is built); excluded pairs are rejected
    in bulk and the shortfall redrawn. Returns fewer than ``m`` only when fewer are available.
    """
    total = n_all_pairs(n_items)
    if n_items >= MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS - 1} items")
    n_excl = len(exclude) if exclude is not None else 0
    if m <= 0 or total == 0:
        return Pairs.empty()
    if total - n_excl <= m or total <= 2 * (m + n_excl):
        # Small universe: enumerate what is left and shuffle.
        everything = Pairs(*pair_from_linear(np.arange(total, dtype=np.int64), n_items))
        left = everything.difference(exclude)
        return left.take(rng.permutation(len(left))[:m])
    got = Pairs.empty()
    while len(got) < m:
        want = m - len(got)
        draw = min(total, int(want * 1.1) + 16 + n_excl * want // max(total, 1))
        k = rng.choice(total, size=draw, replace=False, shuffle=True)
        fresh = Pairs(*pair_from_linear(k, n_items)).difference(exclude).difference(got)
        got = Pairs(np.concatenate([got.i, fresh.i[:want]]), np.concatenate([got.j, fresh.j[:want]]))
    return got


def knn(
    emb: np.ndarray,
    k: int,
    queries: np.ndarray | None = None,
    exact_limit: int = 50_000,
    nprobe: int = 16,
) -> np.ndarray:
    """Indices ``[Q, k]`` of the k nearest neighbours (inner product) of the ``queries`` rows of
    ``emb`` (all rows by default) among all rows, the query itself excluded; missing ones are -1.

    Exact (``IndexFlatIP``) up to ``exact_limit`` items; above it an IVF index (sqrt(N) lists,
    ``nprobe`` probed) costs about O(Q sqrt(N) D) instead of O(Q N D).
    """
    import faiss

    x = np.ascontiguousarray(emb, dtype=np.float32)
    n, d = x.shape
    q = np.arange(n, dtype=np.int64) if queries is None else _as_index(queries)
    k = min(k, n - 1)
    if k <= 0:
        return np.empty((len(q), 0), np.int64)
    if n <= exact_limit:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(x[np.random.default_rng(0).choice(n, min(n, nlist * 64), replace=False)])
        index.nprobe = nprobe
    index.add(x)
    _, nn = index.search(x[q], k + 1)
    # Drop the query wherever it appears (ties can put another item first); keep k others.
    nn = np.where(nn == q[:, None], -1, nn)
    order = np.argsort(nn < 0, axis=1, kind="stable")
    return np.take_along_axis(nn, order, axis=1)[:, :k]


def neighbour_pairs(
    emb: np.ndarray,
    n_neighbours: int,
    max_anchors: int | None = None,
    rng: np.random.Generator | None = None,
    **knn_kwargs,
) -> Pairs:
    """Canonical pairs (anchor, one of its ``n_neighbours`` nearest neighbours).

    Every item is an anchor unless ``max_anchors`` is below N: then a random subset of that size
    (drawn with ``rng``) is, which bounds the search cost on archives of hundreds of thousands.
    """
    n = len(emb)
    if n_neighbours <= 0 or n < 2:
        return Pairs.empty()
    anchors = np.arange(n, dtype=np.int64)
    if max_anchors is not None and max_anchors < n:
        rng = rng if rng is not None else np.random.default_rng(0)
        anchors = np.sort(rng.choice(n, max_anchors, replace=False))
    nn = knn(emb, n_neighbours, queries=anchors, **knn_kwargs)
    rows = np.repeat(anchors, nn.shape[1])
    cols = nn.reshape(-1)
    ok = cols >= 0
    return Pairs.from_arrays(rows[ok], cols[ok])


def candidate_pool(
    emb: np.ndarray,
    n_neighbours: int,
    n_random: int,
    rng: np.random.Generator,
    exclude: Pairs | None = None,
    max_anchors: int | None = None,
    **knn_kwargs,
) -> Pairs:
    """Union of k-nearest-neighbour pairs and ``n_random`` uniform pairs, minus ``exclude``.

    Neighbour pairs come first (of every item, or of ``max_anchors`` random items), then
    ``n_random`` random pairs that are neither neighbour pairs nor excluded (fewer only if the
    archive runs out); the result is canonical (i < j, unique, no self pairs) and holds at most
    ``min(N, max_anchors) * n_neighbours + n_random`` pairs. ``knn_kwargs`` go to :func:`knn`.
    """
    near = neighbour_pairs(emb, n_neighbours, max_anchors, rng, **knn_kwargs).difference(exclude)
    taken = near if exclude is None else near.concat(exclude)
    far = random_pairs(len(emb), n_random, rng, exclude=taken)
    return Pairs(np.concatenate([near.i, far.i]), np.concatenate([near.j, far.j]))
