"""IVF-PQ on small collections: sized to the data (or exact), and the result says what was built."""

import numpy as np
import pytest

from rsir.embed.local import normalise
from rsir.index.faiss_index import IndexParams, build_index, describe, fit_params, search_index


def _vectors(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    return normalise(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))


@pytest.mark.parametrize("params", [IndexParams("ivfpq"), IndexParams("ivfpq", nlist=2, pq_m=16)])
def test_ivfpq_on_168_vectors_builds_and_searches(params: IndexParams) -> None:
    vecs = _vectors(168)  # the demo archive's size: 256 PQ codewords cannot be trained on 168 points
    fitted, note = fit_params(168, 64, params)
    assert fitted.index_type == "ivfpq" and 2**fitted.nbits <= 168 // 4 and fitted.nlist <= 42
    assert "nbits 8 -> 5" in note and describe(fitted).startswith(f"ivfpq (nlist {fitted.nlist}, pq_m {fitted.pq_m}")
    index = build_index(vecs, params)
    assert index.ntotal == 168 and index.pq.nbits == fitted.nbits
    # re-ranked with the exact vectors, every stored vector finds itself first (naive reference: argmax)
    _, rows = search_index(index, vecs, 5, vecs, rerank=10)
    naive = np.argmax(vecs @ vecs.T, axis=1)
    assert (rows[:, 0] == naive).mean() > 0.95


def test_too_few_vectors_fall_back_to_flat_with_a_note() -> None:
    fitted, note = fit_params(40, 64, IndexParams("ivfpq"))
    assert fitted.index_type == "flat" and "flat" in note
    index = build_index(_vectors(40), IndexParams("ivfpq"))
    assert index.ntotal == 40 and not hasattr(index, "nlist")


def test_requests_beyond_the_data_are_clamped_and_reported() -> None:
    fitted, note = fit_params(1000, 64, IndexParams("ivfpq", nlist=5000))
    assert fitted.nlist == 250 and "nlist 5000 -> 250" in note
    untouched, silent = fit_params(100_000, 64, IndexParams("ivfpq", nlist=256))
    assert untouched.nlist == 256 and untouched.nbits == 8 and silent == ""


def test_bad_pq_m_and_type_are_refused_before_vectors_exist() -> None:
    with pytest.raises(ValueError, match="must divide the dimension 1280"):
        fit_params(168, 1280, IndexParams("ivfpq", pq_m=7))
    with pytest.raises(ValueError, match="unknown index type"):
        fit_params(168, 64, IndexParams("ivfq"))
