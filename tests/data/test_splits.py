"""Split specs and query / gallery splits: parsing, stratification, determinism."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from rsir.data.splits import Split, SplitSpec, make_split, parse_split


def _labels(per_class: dict[str, int]) -> list[tuple[str, ...]]:
    return [(name,) for name, n in per_class.items() for _ in range(n)]


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("loo", SplitSpec("loo")),
        (" LOO ", SplitSpec("loo")),
        ("holdout:0.2", SplitSpec("holdout", 0.2)),
        ("holdout:.5", SplitSpec("holdout", 0.5)),
        ("holdout", SplitSpec("holdout", 0.2)),
    ],
)
def test_parse_split(text, spec):
    assert parse_split(text) == spec
    assert parse_split(str(spec)) == spec  # str() round-trips


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("kfold:5", "unknown split"),
        ("", "unknown split"),
        ("holdout:abc", "bad holdout fraction"),
        ("holdout:0", "between 0 and 1"),
        ("holdout:1", "between 0 and 1"),
        ("holdout:-0.1", "between 0 and 1"),
        ("holdout:nan", "between 0 and 1"),
    ],
)
def test_parse_split_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_split(text)


def test_loo_uses_everything_on_both_sides():
    split = make_split(_labels({"a": 3, "b": 2}), parse_split("loo"), seed=0)
    assert split.loo
    np.testing.assert_array_equal(split.query, np.arange(5))
    np.testing.assert_array_equal(split.gallery, np.arange(5))


def test_holdout_is_a_stratified_partition():
    labels = _labels({"a": 10, "b": 20, "c": 30, "d": 40})
    split = make_split(labels, parse_split("holdout:0.2"), seed=3)
    assert not split.loo and split.stratified
    assert split.query.dtype == np.int64 and (np.diff(split.query) > 0).all()
    assert np.array_equal(np.union1d(split.query, split.gallery), np.arange(100))
    assert len(np.intersect1d(split.query, split.gallery)) == 0
    assert Counter(labels[i][0] for i in split.query) == {"a": 2, "b": 4, "c": 6, "d": 8}
    np.testing.assert_array_equal(split.train, split.gallery)


def test_holdout_stratifies_on_the_first_label():
    labels = [("a", "x")] * 10 + [("b", "x")] * 10
    split = make_split(labels, parse_split("holdout:0.5"), seed=1)
    assert Counter(labels[i][0] for i in split.query) == {"a": 5, "b": 5}


def test_holdout_falls_back_when_a_class_is_a_singleton():
    labels = _labels({"a": 10, "b": 9, "lonely": 1})
    split = make_split(labels, parse_split("holdout:0.3"), seed=0)
    assert not split.stratified
    assert len(split.query) == 6 and len(split.gallery) == 14


def test_holdout_keeps_both_sides_non_empty():
    split = make_split([("a",), ("b",)], parse_split("holdout:0.01"), seed=0)
    assert len(split.query) == 1 and len(split.gallery) == 1
    with pytest.raises(ValueError, match="at least 2"):
        make_split([("a",)], parse_split("loo"), seed=0)


def test_same_seed_same_split_and_seeds_differ():
    labels = _labels({"a": 30, "b": 30, "c": 30})
    spec = parse_split("holdout:0.2")
    first, again = make_split(labels, spec, seed=11), make_split(labels, spec, seed=11)
    np.testing.assert_array_equal(first.query, again.query)
    other = make_split(labels, spec, seed=12)
    assert not np.array_equal(first.query, other.query)


def test_same_seed_same_split_in_another_process():
    labels = _labels({"a": 30, "b": 30, "c": 30})
    here: Split = make_split(labels, parse_split("holdout:0.2"), seed=5)
    code = (
        "from rsir.data.splits import make_split, parse_split\n"
        "labels = [(n,) for n in 'abc' for _ in range(30)]\n"
        "print(','.join(map(str, make_split(labels, parse_split('holdout:0.2'), seed=5).query)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ",".join(map(str, here.query))
