import numpy as np
import pytest

from rsir.active.oracle import LabelOracle, parse_rule
from rsir.active.pool import Pairs


def naive(labels, pairs, rule):
    out = []
    for i, j in zip(pairs.i, pairs.j, strict=True):
        a, b = set(labels[i]), set(labels[j])
        if not a or not b:
            out.append(-1)
        elif rule == "share-any":
            out.append(int(bool(a & b)))
        elif rule == "same-set":
            out.append(int(a == b))
        else:
            out.append(int(len(a & b) / len(a | b) >= float(rule.split(":")[1])))
    return out


@pytest.mark.parametrize("rule", ["share-any", "same-set", "jaccard:0.5", "jaccard:0.34", "jaccard:1"])
def test_rules_match_naive_sets_with_more_than_64_classes(rule):
    rng = np.random.default_rng(0)
    classes = [f"class{k}" for k in range(70)]  # two bit words
    labels = [list(rng.choice(classes, size=rng.integers(0, 4), replace=False)) for _ in range(60)]
    labels += [["class3", "class68"], ["class68", "class3"], ["class68"]]  # hits in the second word
    i, j = np.triu_indices(len(labels), 1)
    pairs = Pairs.from_arrays(i, j)
    got = LabelOracle(labels, rule).answer(pairs)
    assert got.dtype == np.int8
    assert got.tolist() == naive(labels, pairs, rule)
    assert {0, 1, -1} <= set(got.tolist()) or rule != "share-any"


def test_single_label_scene_archive():
    oracle = LabelOracle([["a"], ["a"], ["b"], []])
    pairs = Pairs.from_arrays([0, 0, 1, 2], [1, 2, 3, 3])
    assert oracle.answer(pairs).tolist() == [1, 0, -1, -1]
    assert oracle.classes == ["a", "b"]


def test_rule_parsing():
    assert parse_rule("jaccard:0.5") == ("jaccard", 0.5)
    for bad in ["jaccard:0", "jaccard:1.5", "cosine", "jaccard:x"]:
        with pytest.raises(ValueError):
            parse_rule(bad)
