"""Decode threads beside ONNX Runtime: the same batches, in the same order, as decoding in this thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsir.data.items import Archive, Item
from rsir.embed.local import ArchiveImages, embed_archive, thread_batches
from rsir.models.encoders import load_encoder
from rsir.models.runtime import set_runtime


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


@pytest.fixture
def archive(demo_archive, tmp_path) -> Archive:
    items = list(demo_archive.items[::17][:9])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg body")
    items.insert(4, Item("broken", bad, ("x",)))
    return Archive(tmp_path, "scene-folders", items)


@pytest.mark.parametrize("workers", [1, 3])
def test_threads_give_the_sequential_batches(archive, encoder, workers: int) -> None:
    data = ArchiveImages(archive, list(range(len(archive))), encoder)
    naive = list(thread_batches(data, 4, 0))  # decoded here, one batch after another
    threaded = list(thread_batches(data, 4, workers))
    assert [len(e) for _, e in threaded] == [4, 4, 2]
    for (x, errs), (y, errs_naive) in zip(threaded, naive, strict=True):
        assert torch.equal(x, y) and errs == errs_naive
    assert [bool(e) for _, errs in threaded for e in errs] == [i == 4 for i in range(10)]


def test_onnx_embedding_with_decode_threads_equals_eager_torch(archive, encoder, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    fast = embed_archive(archive, set_runtime(encoder, "onnx"), tmp_path / "a", workers=2, progress=False)
    eager = embed_archive(archive, set_runtime(encoder, "torch"), tmp_path / "b", workers=1, progress=False)
    set_runtime(encoder, "auto")
    assert (fast.runtime, eager.runtime) == ("onnx", "torch")
    assert fast.ids == eager.ids and len(fast.ids) == 9 and [f.path.name for f in fast.failed] == ["broken.jpg"]
    assert np.abs(fast.vectors - eager.vectors).max() < 1e-4
