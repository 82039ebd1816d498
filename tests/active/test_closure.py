"""Transitive closure of answers: components, implied labels against a naive reference, implied-pair
sampling, representatives, and the closure strategies that use them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rsir.active.closure import closure_of, component_pairs, implied_pairs, medoids
from rsir.active.pool import Pairs, random_pairs
from rsir.active.strategies import SelectionContext, get_strategy, pick_spread, resolve, strategy_names


def naive_implied(n: int, i, j, y) -> np.ndarray:
    """[n, n] int8 implied labels by brute force: union-find on similar, then dissimilar across."""
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b, lab in zip(i, j, y, strict=True):
        if lab == 1:
            parent[root(a)] = root(b)
    comp = [root(a) for a in range(n)]
    out = np.full((n, n), -1, np.int8)
    for a, b, lab in zip(i, j, y, strict=True):
        if lab == 0 and comp[a] != comp[b]:
            for u, v in itertools.product(range(n), repeat=2):
                if {comp[u], comp[v]} == {comp[a], comp[b]}:
                    out[u, v] = 0
    for u, v in itertools.product(range(n), repeat=2):
        if comp[u] == comp[v]:
            out[u, v] = 1
    return out


def random_answers(n: int, m: int, seed: int) -> tuple[Pairs, np.ndarray]:
    rng = np.random.default_rng(seed)
    pairs = random_pairs(n, m, rng)
    cls = rng.integers(0, 4, n)
    y = (cls[pairs.i] == cls[pairs.j]).astype(np.int8)
    y[rng.random(m) < 0.1] = -1  # skips imply nothing
    return pairs, y


@pytest.mark.parametrize("seed", range(4))
def test_implied_labels_match_a_naive_closure(seed):
    n = 14
    pairs, y = random_answers(n, 18, seed)
    closure = closure_of(n, pairs.i, pairs.j, y)
    every = Pairs.from_arrays(*np.triu_indices(n, 1))
    naive = naive_implied(n, pairs.i, pairs.j, y)
    assert np.array_equal(closure.implied(every), naive[every.i, every.j])
    assert closure.sizes.sum() == n


def test_a_contradicting_dissimilar_answer_implies_nothing():
    # 0~1, 1~2 similar; 0-2 answered dissimilar (an annotator error); 2-3 dissimilar
    closure = closure_of(5, np.array([0, 1, 0, 2]), np.array([1, 2, 2, 3]), np.array([1, 1, 0, 0]))
    got = closure.implied(Pairs.from_arrays([0, 0, 1, 3], [2, 3, 3, 4]))
    assert got.tolist() == [1, 0, 0, -1]


def test_implied_pairs_are_implied_with_their_label_and_both_kinds():
    n = 30
    pairs, y = random_answers(n, 60, 0)
    closure = closure_of(n, pairs.i, pairs.j, y)
    got, labels = implied_pairs(closure, 400, np.random.default_rng(0))
    assert len(got) == 400 and (got.i != got.j).all()
    naive = naive_implied(n, pairs.i, pairs.j, y)
    assert np.array_equal(naive[got.i, got.j], labels)
    assert (labels == 1).sum() == 200 and (labels == 0).sum() == 200


def test_nothing_implied_gives_no_pairs():
    closure = closure_of(4, np.array([0]), np.array([1]), np.array([-1]))
    got, labels = implied_pairs(closure, 10, np.random.default_rng(0))
    assert len(got) == 0 and len(labels) == 0


def test_medoids_match_a_naive_loop():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(12, 5)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    closure = closure_of(12, np.array([0, 1, 4, 5, 6]), np.array([1, 2, 5, 6, 7]), np.ones(5, np.int8))
    got = medoids(emb, closure)
    for c in range(closure.n_components):
        members = np.flatnonzero(closure.component == c)
        centre = emb[members].sum(axis=0)
        assert got[c] == members[np.argmax(emb[members] @ centre)]


def test_component_pairs_reach_the_nearest_components_and_skip_decided_pairs():
    # two tight groups of 3 answered similar, far apart; items 6, 7 unassigned near each group
    emb = np.array([[1, 0], [1, 0.1], [1, -0.1], [0, 1], [0.1, 1], [-0.1, 1], [1, 0.05], [0.05, 1]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    i, j, y = np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5]), np.ones(4, np.int8)
    closure = closure_of(8, i, j, y)
    got = component_pairs(emb, closure, n_partners=1)
    assert not (closure.implied(got) >= 0).any()
    reps = medoids(emb, closure)
    assert {(int(a), int(b)) for a, b in zip(got.i, got.j, strict=True)} >= {
        tuple(sorted((6, int(reps[closure.component[0]])))),
        tuple(sorted((7, int(reps[closure.component[3]])))),
    }


def grouped_context(n_labelled: int = 60) -> SelectionContext:
    rng = np.random.default_rng(0)
    cls = np.repeat(np.arange(4), 10)
    emb = rng.normal(0, 1, (4, 8))[cls] + rng.normal(0, 0.5, (40, 8))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    labelled = random_pairs(40, n_labelled, rng)
    y = (cls[labelled.i] == cls[labelled.j]).astype(np.int8)
    return SelectionContext(emb, labelled, y, n_neighbours=5, n_random=200)


@pytest.mark.parametrize(
    "name", ["closure-likely", "closure-mgue", "closure-anneal", "closure-reach", "closure-mgue-reach"]
)
def test_closure_strategies_never_ask_what_the_answers_imply(name):
    ctx = grouped_context()
    picks = get_strategy(name).select(ctx, 20, np.random.default_rng(0))
    assert len(picks) == 20
    assert not (ctx.closure().implied(picks) >= 0).any()
    # the plain neighbour strategy does ask implied pairs on the same context: the filter matters
    plain = get_strategy("neighbours").select(grouped_context(), 200, np.random.default_rng(0))
    assert (grouped_context().closure().implied(plain) >= 0).any()


def test_pick_spread_takes_one_pair_per_smaller_component_first():
    ctx = grouped_context(n_labelled=0)
    pool = ctx.pool()
    picked = pick_spread(ctx, np.zeros(len(pool)), 30, np.random.default_rng(0))
    items = np.concatenate([pool.i[picked], pool.j[picked]])
    small = np.minimum(pool.i[picked], pool.j[picked])  # all singletons: ties go to the smaller id
    assert len(np.unique(small)) == 30 and len(items) == 60


def test_mgue_reach_picks_among_the_most_uncertain_the_pairs_that_imply_most():
    """Naive reference: the closure pool's pairs sorted by MGUE score; `closure-mgue-reach` picks only from
    the best 3 x budget of them (ties included), and its picks imply more pairs (|A| x |B|) than `closure-mgue`'s."""
    from rsir.active.strategies import mgue

    budget = 8
    reach = {}
    for name in ("closure-mgue", "closure-mgue-reach"):
        ctx = grouped_context(n_labelled=120)
        picks = get_strategy(name).select(ctx, budget, np.random.default_rng(0))
        closure, pool = ctx.closure(), ctx.pool()  # the closure pool the strategy scored
        sizes = closure.sizes[closure.component[picks.i]] * closure.sizes[closure.component[picks.j]]
        reach[name] = float(sizes.mean())
        if name == "closure-mgue-reach":
            scores = mgue(ctx)
            cut = np.sort(scores)[::-1][3 * budget - 1]  # ties with the 3 x budget-th score count as top
            best = set(zip(pool.i[scores >= cut], pool.j[scores >= cut], strict=True))
            from_top = np.array([(a, b) in best for a, b in zip(picks.i, picks.j, strict=True)])
            # the best ones first; spreading (one per smaller-side group) may reach past them
            assert from_top.mean() >= 0.5
    assert reach["closure-mgue-reach"] > reach["closure-mgue"]


def test_default_resolves_to_a_registered_strategy():
    assert resolve("default") != "default" and resolve("default") in strategy_names()
    assert get_strategy("default") is get_strategy(resolve("default"))
    assert resolve("neighbours") == "neighbours"
    with pytest.raises(KeyError, match="default"):
        get_strategy("nope")


@pytest.mark.parametrize("budget", [3, 25, 200])
def test_pick_spread_matches_a_naive_greedy_pass(budget):
    """Distinct scores: the best pair of each smaller-side component, best first, topped up with the
    best remaining pairs; the fast path looks at the top 20 x budget only while that is enough."""
    ctx = grouped_context(n_labelled=50)
    pool = ctx.pool()
    scores = np.random.default_rng(3).permutation(len(pool)).astype(np.float64)
    comp, sizes = ctx.closure().component, ctx.closure().sizes
    seen, first, rest = set(), [], []
    for row in np.argsort(-scores):
        a, b = comp[pool.i[row]], comp[pool.j[row]]
        key = a if sizes[a] <= sizes[b] else b
        (rest if key in seen else first).append(row)
        seen.add(key)
    naive = (first + rest)[:budget] if len(first) < budget else first[:budget]
    got = pick_spread(ctx, scores, budget, np.random.default_rng(0))
    assert sorted(got.tolist()) == sorted(naive)
