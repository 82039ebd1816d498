"""Strategies over the top of each item's ranking, and blends of named strategies.

The pairs (item, one of its k nearest neighbours in the current head's space) are what map@k scores: a
dissimilar answer there is a hard negative. Measured against ``closure-mgue`` in docs/benchmarks.md
(issue 17): within noise of it, so not the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rsir.active.pool import Pairs, neighbour_pairs

if TYPE_CHECKING:
    from rsir.active.strategies import Picker, Scorer, SelectionContext


def _join(a: Pairs, b: Pairs) -> Pairs:
    return Pairs(np.concatenate([a.i, b.i]), np.concatenate([a.j, b.j]))


@dataclass(frozen=True)
class TopOfRankingStrategy:
    """Pairs (item, one of its ``k`` nearest neighbours in the current head's space) whose answer the
    closure does not imply, scored and picked as :class:`PoolStrategy`: the top of each item's ranking
    is what map@k scores, and a dissimilar answer there is a hard negative. When fewer such pairs than
    the budget remain, ``fill`` (a strategy name) picks the rest."""

    scorer: Scorer
    picker: Picker
    k: int = 20
    fill: str = "closure-mgue"

    def select(self, ctx: SelectionContext, budget: int, rng: np.random.Generator) -> Pairs:
        from rsir.active.strategies import PoolStrategy, get_strategy

        if budget <= 0:
            return Pairs.empty()
        near = neighbour_pairs(ctx.emb, self.k, ctx.max_anchors, rng).difference(ctx.labelled)
        near = near.take(ctx.closure().implied(near) < 0)
        picked = Pairs.empty()
        if len(near):
            ctx.replace_pool(near)
            picked = PoolStrategy(self.scorer, self.picker).select(ctx, budget, rng)
        if len(picked) < budget:
            more = get_strategy(self.fill).select(ctx.excluding(picked), budget - len(picked), rng)
            picked = _join(picked, more)
        return picked


@dataclass(frozen=True)
class BlendStrategy:
    """Each named strategy picks its share of the budget in turn, the pairs already picked left out;
    the last one also makes up any shortfall of the earlier ones."""

    parts: tuple[tuple[str, float], ...]

    def select(self, ctx: SelectionContext, budget: int, rng: np.random.Generator) -> Pairs:
        from rsir.active.strategies import get_strategy

        total = sum(share for _, share in self.parts)
        picked, cumulative = Pairs.empty(), 0.0
        for n, (name, share) in enumerate(self.parts):
            cumulative += share
            want = budget if n == len(self.parts) - 1 else int(round(budget * cumulative / total))
            want -= len(picked)
            if want <= 0:
                continue
            sub = ctx if not len(picked) else ctx.excluding(picked)
            more = get_strategy(name).select(sub, want, rng)
            picked = _join(picked, more)
        return picked
