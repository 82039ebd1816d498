"""Selection strategies: an uncertainty scorer composed with a picker, looked up by name.

A pool strategy is ``scorer(ctx) -> scores over ctx.pool()`` followed by
``picker(ctx, scores, budget, rng) -> pool rows``; the round loop only calls ``select``.

| name           | candidates          | scorer | picker                      |
|----------------|---------------------|--------|-----------------------------|
| `random`       | all N(N-1)/2 pairs  | -      | uniform                     |
| `neighbours`   | pool                | none   | top-k = uniform over pool   |
| `mgue`         | pool                | MGUE   | top-k                       |
| `bcgue`        | pool                | BCGUE  | top-k                       |
| `diversity`    | pool                | none   | cluster (random per cluster)|
| `anneal-mgue`  | pool                | MGUE   | cluster (best per cluster)  |
| `anneal-bcgue` | pool                | BCGUE  | cluster (best per cluster)  |
| `mixed`        | kNN pairs + all     | -      | half uniform from each      |
| `closure-mgue` | closure pool        | MGUE   | spread (one per group)      |
| `closure-anneal` | closure pool      | MGUE   | cluster (best per cluster)  |
| `closure-mgue-reach` | closure pool  | MGUE   | most implied of the top 3x, spread |
| `closure-likely` | closure pool      | -distance | spread                   |
| `closure-reach` | item-group pairs   | MGUE   | spread                      |
| `closure-top`  | top-20 pairs, undecided | MGUE | spread (fill: `closure-mgue`) |
| `closure-neighbours` | top-10 pairs, undecided | none | uniform (fill: `closure-mgue`) |
| `closure-top-mix` | half `closure-top`, half `closure-mgue`                      |
| `closure-neighbours-mix` | half `closure-neighbours`, half `closure-mgue`        |
| `default`      | the best measured: `closure-mgue-reach` (:data:`DEFAULT`)         |

The closure pool is the candidate pool minus every pair whose answer the answers already imply
(:mod:`rsir.active.closure`), plus each item's pairs with the representatives of its nearest answered
groups; "top-k pairs, undecided" are the pairs (item, one of its k nearest neighbours in the current
head's space) whose answer the closure does not imply: the top of each item's ranking, where map@k is
scored and a dissimilar answer is a hard negative (:mod:`rsir.active.ranking`). "spread" takes the best
pairs, at most one per smaller-side group while there are enough.

`mixed` is the default initial round: half its pairs come from nearest neighbours (mostly similar),
half uniformly from all pairs (mostly dissimilar), so the first threshold sees both answers whatever the
archive's size. Uniform over the pool (`neighbours`) depends on how many neighbour pairs the pool
holds against its random ones: on a 168-scene archive the random ones dominate and few pairs are similar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rsir.active.closure import Closure, closure_of, component_pairs
from rsir.active.diversity import cluster_picks, top_k
from rsir.active.pool import Pairs, candidate_pool, knn, random_pairs
from rsir.active.ranking import BlendStrategy, TopOfRankingStrategy
from rsir.active.uncertainty import (
    PairClassifier,
    bcgue_scores,
    estimate_threshold,
    mgue_scores,
    pair_distance,
    pair_features,
)


@dataclass
class SelectionContext:
    """What a strategy may look at in one round.

    ``emb``: float32 ``[N, D]`` L2-normalised embeddings from the current head; ``labelled`` and
    ``labels`` (int8: 1, 0, -1 skipped) are every pair asked so far. The candidate pool (k nearest
    neighbours + random pairs, minus every labelled pair, skipped ones included) is built on first
    use and cached, as are its distances; pass ``candidates`` to reuse a pool. Scorers write what
    they fitted (threshold, classifier state) to ``info`` for the caller to log. ``max_anchors``
    bounds the neighbour search on big archives (see :func:`candidate_pool`).
    """

    emb: np.ndarray
    labelled: Pairs = field(default_factory=Pairs.empty)
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    n_neighbours: int = 10
    n_random: int = 100_000
    max_anchors: int | None = None
    pool_seed: int = 0
    candidates: Pairs | None = None
    info: dict[str, Any] = field(default_factory=dict)
    _pool_distances: np.ndarray | None = field(default=None, repr=False)
    _closure: Closure | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, np.int8)
        if len(self.labels) != len(self.labelled):
            raise ValueError(f"{len(self.labelled)} labelled pairs but {len(self.labels)} labels")
        if not (self.labelled.i < self.labelled.j).all():
            raise ValueError("labelled pairs must be canonical (i < j); build them with Pairs.from_arrays")

    @property
    def n_items(self) -> int:
        return int(self.emb.shape[0])

    def pool(self) -> Pairs:
        if self.candidates is None:
            rng = np.random.default_rng(self.pool_seed)
            self.candidates = candidate_pool(self.emb, self.n_neighbours, self.n_random, rng, exclude=self.labelled)
        return self.candidates

    def pool_distances(self) -> np.ndarray:
        if self._pool_distances is None:
            self._pool_distances = pair_distance(self.emb, self.pool())
        return self._pool_distances

    def labelled_distances(self) -> np.ndarray:
        return pair_distance(self.emb, self.labelled)

    def closure(self) -> Closure:
        """Components and dissimilar relations the answers imply (cached)."""
        if self._closure is None:
            self._closure = closure_of(self.n_items, self.labelled.i, self.labelled.j, self.labels)
        return self._closure

    def replace_pool(self, candidates: Pairs) -> None:
        self.candidates, self._pool_distances = candidates, None

    def excluding(self, picked: Pairs) -> SelectionContext:
        """A fresh context in which ``picked`` count as asked with no answer yet (skipped): they leave
        every pool, and the closure and thresholds stay those of the answers."""
        asked = self.labelled.concat(picked)  # canonical: the labelled pairs first, in their order
        return SelectionContext(
            self.emb,
            asked,
            np.concatenate([self.labels, np.full(len(asked) - len(self.labelled), -1, np.int8)]),
            n_neighbours=self.n_neighbours,
            n_random=self.n_random,
            max_anchors=self.max_anchors,
            pool_seed=self.pool_seed,
            info=self.info,
        )


class Strategy(Protocol):
    def select(self, ctx: SelectionContext, budget: int, rng: np.random.Generator) -> Pairs: ...


Scorer = Callable[[SelectionContext], np.ndarray]
Picker = Callable[[SelectionContext, np.ndarray, int, np.random.Generator], np.ndarray]


# --- scorers: higher = more informative, one score per pool pair -------------------------------


def no_uncertainty(ctx: SelectionContext) -> np.ndarray:
    return np.zeros(len(ctx.pool()), np.float32)


def mgue(ctx: SelectionContext) -> np.ndarray:
    d = ctx.pool_distances()
    t = estimate_threshold(ctx.labelled_distances(), ctx.labels, reference=d)
    ctx.info["threshold"] = t
    return mgue_scores(d, t)


def bcgue(ctx: SelectionContext) -> np.ndarray:
    """BCGUE; falls back to MGUE until both classes have been labelled (nothing to fit)."""
    clf = PairClassifier().fit(ctx.emb, ctx.labelled, ctx.labels)
    ctx.info["classifier"] = "fitted" if clf.fitted else "fallback-mgue"
    if not clf.fitted:
        return mgue(ctx)
    return bcgue_scores(clf.predict_proba(ctx.emb, ctx.pool()))


def likely(ctx: SelectionContext) -> np.ndarray:
    """Most likely similar first (smallest distance): consolidates components fastest."""
    return -ctx.pool_distances()


# --- pickers -------------------------------------------------------------------------------------


def pick_top(ctx: SelectionContext, scores: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    return top_k(scores, budget, rng)


@dataclass(frozen=True)
class PickClusters:
    """k-means on pair features of the top ``preselect_factor * budget`` pool pairs."""

    preselect_factor: int = 10

    def __call__(self, ctx: SelectionContext, scores: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
        pool = ctx.pool()
        return cluster_picks(
            lambda rows: pair_features(ctx.emb, pool.take(rows)),
            scores,
            budget,
            rng,
            preselect_factor=self.preselect_factor,
        )


SPREAD_FACTOR = 20


def _smaller_component(ctx: SelectionContext, rows: np.ndarray) -> np.ndarray:
    """Per pool row, the component of its pair's smaller side (ties: the first item's)."""
    closure, pool = ctx.closure(), ctx.pool()
    a, b = closure.component[pool.i[rows]], closure.component[pool.j[rows]]
    return np.where(closure.sizes[a] <= closure.sizes[b], a, b)


def pick_spread(ctx: SelectionContext, scores: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Best-scoring pairs, at most one per smaller-side component while there are enough: a round's
    answers then reach ``budget`` different components instead of re-asking about one. Spreads over the
    best ``SPREAD_FACTOR * budget`` pairs only (no full sort of a million-pair pool); all when too few differ."""
    order = top_k(scores, SPREAD_FACTOR * budget, rng)
    if len(np.unique(_smaller_component(ctx, order))) < budget:
        order = top_k(scores, len(scores), rng)
    _, first = np.unique(_smaller_component(ctx, order), return_index=True)
    first = np.sort(first)[:budget]
    if len(first) < budget:
        rest = np.setdiff1d(np.arange(len(order)), first, assume_unique=True)
        first = np.sort(np.concatenate([first, rest[: budget - len(first)]]))
    return order[first]


@dataclass(frozen=True)
class PickImplied:
    """Of the ``preselect_factor * budget`` best-scoring pairs, those whose answer implies the most
    pairs (``|A| x |B|`` for components A, B), then as :func:`pick_spread`."""

    preselect_factor: int = 3

    def __call__(self, ctx: SelectionContext, scores: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
        pre = top_k(scores, self.preselect_factor * budget, rng)
        closure, pool = ctx.closure(), ctx.pool()
        reach = closure.sizes[closure.component[pool.i[pre]]] * closure.sizes[closure.component[pool.j[pre]]]
        ranked = np.zeros(len(scores))
        ranked[pre] = 1.0 + reach / max(reach.max(), 1)
        return pick_spread(ctx, ranked, budget, rng)


# --- strategies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolStrategy:
    """Score the candidate pool, then pick; never returns labelled pairs (the pool excludes them)."""

    scorer: Scorer
    picker: Picker

    def select(self, ctx: SelectionContext, budget: int, rng: np.random.Generator) -> Pairs:
        pool = ctx.pool()
        if budget <= 0 or not len(pool):
            return Pairs.empty()
        return pool.take(self.picker(ctx, self.scorer(ctx), budget, rng))


@dataclass(frozen=True)
class ClosureStrategy:
    """A pool strategy over the closure pool: the candidate pool minus every pair the answers already
    imply, plus (item, representative) pairs for each item's ``n_partners`` nearest components of
    at least two members; then score and pick as :class:`PoolStrategy`."""

    scorer: Scorer
    picker: Picker
    n_partners: int = 2
    reach_only: bool = False  # only (item, representative) pairs while there are enough of them

    def select(self, ctx: SelectionContext, budget: int, rng: np.random.Generator) -> Pairs:
        closure = ctx.closure()
        pool = ctx.pool()
        pool = pool.take(closure.implied(pool) < 0)
        reach = component_pairs(ctx.emb, closure, self.n_partners, max_anchors=ctx.max_anchors, rng=rng)
        reach = reach.difference(ctx.labelled)
        ctx.replace_pool(reach if self.reach_only and len(reach) >= 3 * budget else pool.concat(reach))
        ctx.info["components"] = int((closure.sizes >= 2).sum())
        ctx.info["largest_component"] = int(closure.sizes.max()) if closure.n_components else 0
        return PoolStrategy(self.scorer, self.picker).select(ctx, budget, rng)


@dataclass(frozen=True)
class RandomStrategy:
    """Uniform over all unlabelled pairs of the archive, not just the pool."""

    def select(self, ctx: SelectionContext, budget: int, rng: np.random.Generator) -> Pairs:
        return random_pairs(ctx.n_items, budget, rng, exclude=ctx.labelled)


@dataclass(frozen=True)
class MixedStrategy:
    """``near_share`` of the budget from the closest neighbour pairs, the rest uniform over all pairs.

    The near part takes each item's 1st neighbour, widening to the 2nd, 3rd... (up to ``n_neighbours``)
    only while there are too few such pairs: the nearer the neighbour, the likelier a similar answer.
    """

    near_share: float = 0.5

    def select(self, ctx: SelectionContext, budget: int, rng: np.random.Generator) -> Pairs:
        n_near = int(round(budget * self.near_share))
        near = self._nearest(ctx, n_near, rng)
        picked = near.take(np.sort(rng.choice(len(near), min(n_near, len(near)), replace=False)))
        far = random_pairs(ctx.n_items, budget - len(picked), rng, exclude=ctx.labelled.concat(picked))
        both = Pairs(np.concatenate([picked.i, far.i]), np.concatenate([picked.j, far.j]))
        return both.take(rng.permutation(len(both)))

    @staticmethod
    def _nearest(ctx: SelectionContext, want: int, rng: np.random.Generator) -> Pairs:
        n = ctx.n_items
        if want <= 0 or n < 2:
            return Pairs.empty()
        anchors = np.arange(n, dtype=np.int64)
        if ctx.max_anchors is not None and ctx.max_anchors < n:
            anchors = np.sort(rng.choice(n, ctx.max_anchors, replace=False))
        nn = knn(ctx.emb, ctx.n_neighbours, queries=anchors)
        near = Pairs.empty()
        for k in range(1, nn.shape[1] + 1):
            cols = nn[:, :k].reshape(-1)
            rows = np.repeat(anchors, k)
            near = Pairs.from_arrays(rows[cols >= 0], cols[cols >= 0]).difference(ctx.labelled)
            if len(near) >= want:
                break
        return near


STRATEGIES: dict[str, Strategy] = {
    "random": RandomStrategy(),
    "neighbours": PoolStrategy(no_uncertainty, pick_top),
    "mgue": PoolStrategy(mgue, pick_top),
    "bcgue": PoolStrategy(bcgue, pick_top),
    "diversity": PoolStrategy(no_uncertainty, PickClusters()),
    "anneal-mgue": PoolStrategy(mgue, PickClusters()),
    "anneal-bcgue": PoolStrategy(bcgue, PickClusters()),
    "mixed": MixedStrategy(),
    "closure-mgue": ClosureStrategy(mgue, pick_spread),
    "closure-likely": ClosureStrategy(likely, pick_spread),
    "closure-anneal": ClosureStrategy(mgue, PickClusters()),
    "closure-reach": ClosureStrategy(mgue, pick_spread, n_partners=3, reach_only=True),
    "closure-mgue-reach": ClosureStrategy(mgue, PickImplied()),
    "closure-top": TopOfRankingStrategy(mgue, pick_spread, k=20),
    "closure-neighbours": TopOfRankingStrategy(no_uncertainty, pick_top, k=10),
    "closure-top-mix": BlendStrategy((("closure-top", 0.5), ("closure-mgue", 0.5))),
    "closure-neighbours-mix": BlendStrategy((("closure-neighbours", 0.5), ("closure-mgue", 0.5))),
}


# What `default` selects (CLI, API, `rsir anneal serve`); the measurements behind it: docs/benchmarks.md.
DEFAULT = "closure-mgue-reach"


def resolve(name: str) -> str:
    """The strategy a name selects: ``default`` -> :data:`DEFAULT`, any other name itself."""
    return DEFAULT if name == "default" else name


def strategy_names() -> list[str]:
    """Every name a strategy may be given by, ``default`` included."""
    return [*STRATEGIES, "default"]


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[resolve(name)]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(strategy_names())}") from None


def register(name: str, strategy: Strategy) -> None:
    if name in STRATEGIES or name == "default":
        raise ValueError(f"strategy {name!r} already registered")
    STRATEGIES[name] = strategy
