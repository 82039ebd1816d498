"""Transitive closure of pair answers: what the answers imply beyond the pairs asked.

Similar answers join items into components (connected components of the "similar" graph); a
dissimilar answer between two components makes every pair across them dissimilar. With single-label
archives and an exact annotator every implied answer is right; people err, so the learner weights
implied pairs below direct ones (:attr:`rsir.active.learner.PairTraining.closure`), and a dissimilar
answer inside one component (a contradiction) implies nothing.

The closure serves two ends: the learner trains on implied pairs (each answer counts for many), and
the ``closure-*`` strategies never ask a pair whose answer is already implied, and ask pairs that
join an item to the component it most likely belongs to (Basu et al. 2004, "Explore and Consolidate";
active clustering with pairwise queries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsir.active.pool import Pairs


@dataclass(frozen=True)
class Closure:
    """``component[n]``: component id of item ``n`` (0..m-1); ``sizes[c]``: its member count;
    ``apart``: sorted int64 keys ``(a << 32) | b`` (a < b) of component pairs answered dissimilar."""

    component: np.ndarray
    sizes: np.ndarray
    apart: np.ndarray

    @property
    def n_components(self) -> int:
        return len(self.sizes)

    def _keys(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        return (lo << np.int64(32)) | hi

    def implied(self, pairs: Pairs) -> np.ndarray:
        """int8 per pair: 1 implied similar (same component), 0 implied dissimilar, -1 unknown."""
        a, b = self.component[pairs.i], self.component[pairs.j]
        out = np.full(len(pairs), -1, np.int8)
        out[np.isin(self._keys(a, b), self.apart)] = 0
        out[a == b] = 1
        return out

    def members(self) -> tuple[np.ndarray, np.ndarray]:
        """Items sorted by component and each component's first position in that order."""
        order = np.argsort(self.component, kind="stable")
        starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        return order, starts


def closure_of(n_items: int, i: np.ndarray, j: np.ndarray, labels: np.ndarray) -> Closure:
    """The closure of answers ``labels`` (1 similar, 0 dissimilar, else ignored) on pairs ``(i, j)``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i, j, y = np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(labels)
    sim = y == 1
    graph = coo_matrix((np.ones(int(sim.sum()), np.int8), (i[sim], j[sim])), shape=(n_items, n_items))
    _, comp = connected_components(graph, directed=False)
    comp = comp.astype(np.int64)
    sizes = np.bincount(comp).astype(np.int64)
    a, b = comp[i[y == 0]], comp[j[y == 0]]
    keep = a != b  # a dissimilar answer inside a component contradicts it: implies nothing
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    return Closure(comp, sizes, np.unique((lo << np.int64(32)) | hi))


def implied_pairs(closure: Closure, n_pairs: int, rng: np.random.Generator) -> tuple[Pairs, np.ndarray]:
    """Up to ``n_pairs`` implied pairs drawn with replacement, half similar and half dissimilar (when
    both exist), each uniformly among all pairs the closure implies of its kind; labels int8."""
    order, starts = closure.members()
    sizes = closure.sizes

    def member(comp: np.ndarray) -> np.ndarray:
        return order[starts[comp] + (rng.random(len(comp)) * sizes[comp]).astype(np.int64)]

    within = sizes * (sizes - 1) / 2
    ca, cb = closure.apart >> np.int64(32), closure.apart & np.int64((1 << 32) - 1)
    across = (sizes[ca] * sizes[cb]).astype(np.float64)
    n_pos = n_pairs // 2 if across.sum() > 0 else n_pairs
    n_pos = n_pos if within.sum() > 0 else 0
    parts_i, parts_j, parts_y = [], [], []
    if n_pos:
        comp = rng.choice(len(sizes), n_pos, p=within / within.sum())
        a = member(comp)
        # a second, different member: offset by 1..size-1 within the component
        off = 1 + (rng.random(n_pos) * (sizes[comp] - 1)).astype(np.int64)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        b = order[starts[comp] + (rank[a] - starts[comp] + off) % sizes[comp]]
        parts_i.append(a)
        parts_j.append(b)
        parts_y.append(np.ones(n_pos, np.int8))
    n_neg = n_pairs - n_pos
    if n_neg and across.sum() > 0:
        edge = rng.choice(len(across), n_neg, p=across / across.sum())
        parts_i.append(member(ca[edge]))
        parts_j.append(member(cb[edge]))
        parts_y.append(np.zeros(n_neg, np.int8))
    if not parts_i:
        return Pairs.empty(), np.empty(0, np.int8)
    return Pairs(np.concatenate(parts_i), np.concatenate(parts_j)), np.concatenate(parts_y)


def medoids(emb: np.ndarray, closure: Closure) -> np.ndarray:
    """Per component, the member closest to the component's mean direction (its representative)."""
    order, starts = closure.members()
    comp = closure.component[order]
    centre = np.zeros((closure.n_components, emb.shape[1]), np.float64)
    np.add.at(centre, comp, emb[order])
    cos = np.einsum("md,md->m", emb[order], centre[comp].astype(np.float32))
    # best member per component: sort by (component, -cos), first of each run
    best = np.lexsort((-cos, comp))
    return order[best[starts]]


def component_pairs(
    emb: np.ndarray,
    closure: Closure,
    n_partners: int,
    min_size: int = 2,
    max_anchors: int | None = None,
    rng: np.random.Generator | None = None,
) -> Pairs:
    """Pairs (item, representative of one of the ``n_partners`` components nearest to it), among
    components of at least ``min_size`` members, leaving out pairs the closure already decides.

    The representative is the component's medoid; "nearest" is the inner product with the medoid.
    ``max_anchors`` bounds the items searched on big archives (a random subset).
    """
    big = np.flatnonzero(closure.sizes >= min_size)
    if not len(big) or n_partners <= 0:
        return Pairs.empty()
    reps = medoids(emb, closure)[big]
    n = len(emb)
    items = np.arange(n, dtype=np.int64)
    if max_anchors is not None and max_anchors < n:
        rng = rng if rng is not None else np.random.default_rng(0)
        items = np.sort(rng.choice(n, max_anchors, replace=False))
    k = min(n_partners + 1, len(reps))  # +1: an item's own component is usually nearest
    sims = emb[items] @ emb[reps].T
    near = (
        np.argpartition(-sims, k - 1, axis=1)[:, :k]
        if k < len(reps)
        else np.tile(np.arange(len(reps)), (len(items), 1))
    )
    pairs = Pairs.from_arrays(np.repeat(items, near.shape[1]), reps[near.reshape(-1)])
    return pairs.take(closure.implied(pairs) < 0)
