"""RoundRecord carries the strategy as asked, the name it resolved to, and the round's diagnostics."""

from rsir.api_anneal import RoundRecord


def test_round_record_from_a_simulation_row() -> None:
    row = {"strategy": "default", "resolved": "closure-mgue", "seed": 2, "round": 3, "n_labelled": 1000,
           "map@20": 0.9, "n_similar": 600, "round_similar": 0.55, "round_model_right": 0.6}  # fmt: skip
    r = RoundRecord.from_row(row)
    assert (r.strategy, r.resolved, r.seed, r.round, r.map_at_k) == ("default", "closure-mgue", 2, 3, 0.9)
    assert (r.round_similar, r.round_model_right) == (0.55, 0.6)


def test_round_record_from_a_campaign_record_without_names() -> None:
    r = RoundRecord.from_row({"round": 0, "n_labelled": 20, "map@20": 0.7, "round_similar": 0.5}, strategy="mgue")
    assert (r.strategy, r.resolved, r.round_model_right) == ("mgue", "mgue", None)
