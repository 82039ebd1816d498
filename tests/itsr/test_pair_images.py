"""The image side of the change-caption feature caches: encoder inputs of one or both dates, streamed arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rsir.data.changecap import ChangePair
from rsir.itsr.pair_images import PairInputs, pair_batches, prepared_pair, stream_to_npy
from rsir.models.config import Preprocess


def _pairs(root: Path, n: int = 3) -> list[ChangePair]:
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        paths = []
        for date in ("A", "B"):
            path = root / f"{i}{date}.png"
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(path)
            paths.append(path)
        pairs.append(ChangePair(f"p{i}", paths[0], paths[1], ("a caption",), True, "test"))
    return pairs


def test_single_date_inputs_are_the_after_image_of_the_pair_inputs(tmp_path: Path):
    pairs, prep = _pairs(tmp_path), Preprocess(size=16)
    both, single = PairInputs(pairs, prep), PairInputs(pairs, prep, single_date=True)
    assert len(both) == len(single) == 3
    for i, pair in enumerate(pairs):
        assert both[i].shape == (2, 3, 16, 16) and single[i].shape == (3, 16, 16)
        assert torch.equal(both[i], prepared_pair(pair, prep))
        assert torch.equal(single[i], both[i][1])
        assert not torch.equal(single[i], both[i][0])
    batches = list(pair_batches(pairs, prep, 2, 0, "test", False, single_date=True))
    assert [b.shape[0] for b in batches] == [2, 1]
    assert torch.equal(torch.cat(batches), torch.stack([single[i] for i in range(3)]))


def test_stream_to_npy_writes_float16_rows_in_place_and_refuses_nothing(tmp_path: Path):
    rows = np.arange(30, dtype=np.float32).reshape(5, 2, 3) / 7
    out = stream_to_npy(tmp_path / "x.npy", 5, iter([rows[:2], rows[2:]]), "test")
    assert out.dtype == np.float16 and np.array_equal(out, rows.astype(np.float16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # the temporary file was renamed
    with pytest.raises(ValueError, match="split 'val' has no pairs"):
        stream_to_npy(tmp_path / "y.npy", 0, iter([]), "val")


def test_an_empty_split_is_refused_before_any_encoder_runs_naming_pairs_or_images(tmp_path: Path):
    from rsir.data.changecap import ChangeCaptionArchive
    from rsir.itsr.features import split_features
    from rsir.text.features import scene_split_features

    archive = ChangeCaptionArchive(tmp_path, "levir-cc", _pairs(tmp_path))  # every pair in "test"
    with pytest.raises(ValueError, match="split 'val' has no pairs"):
        split_features(archive, "val", None, tmp_path)
    with pytest.raises(ValueError, match="split 'val' has no images"):
        scene_split_features(archive, "val", None, tmp_path)
