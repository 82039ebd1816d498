import shutil

import numpy as np
import pytest

from rsir.data.items import Archive, ImageError, Item
from rsir.embed.local import embed_archive
from rsir.models.encoders import load_encoder


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


@pytest.fixture
def small_archive(demo_archive, tmp_path) -> Archive:
    """Six real scenes plus one file that passes a listing but is not an image."""
    items = list(demo_archive.items[::28][:6])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg body")
    items.insert(3, Item("broken", bad, ("x",)))
    return Archive(tmp_path, "scene-folders", items)


def test_embedding_reports_bad_items_and_normalises(small_archive, encoder, tmp_path) -> None:
    emb = embed_archive(small_archive, encoder, tmp_path / "work", shard_size=4, progress=False)
    assert "broken" not in emb.ids and len(emb.ids) == 6
    assert [f.path.name for f in emb.failed] == ["broken.jpg"]
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ImageError, match="broken.jpg"):
        embed_archive(small_archive, encoder, tmp_path / "work", shard_size=4, strict=True, progress=False)


def test_rerun_resumes_from_finished_shards(small_archive, encoder, tmp_path) -> None:
    work = tmp_path / "work"
    first = embed_archive(small_archive, encoder, work, shard_size=2, progress=False)
    shards = sorted(work.glob("shard_*.npz"))
    assert len(shards) == 4
    # A crash after two shards: the last two are gone; the first two must be reused untouched.
    kept = {p: p.stat().st_mtime_ns for p in shards[:2]}
    for p in shards[2:]:
        p.unlink()
    # Make the reused shards recognisable: if they were recomputed, these marks would vanish.
    for p in kept:
        shutil.copy(p, p.with_suffix(".bak"))
    second = embed_archive(small_archive, encoder, work, shard_size=2, progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert second.ids == first.ids
    np.testing.assert_allclose(second.vectors, first.vectors, atol=1e-5)


def test_matches_direct_forward(small_archive, encoder, tmp_path) -> None:
    """The batched pipeline gives the same vector as a plain decode -> prepare -> encode of one image."""
    import torch

    from rsir.data.images import load_image
    from rsir.models.preprocess import prepare

    emb = embed_archive(small_archive, encoder, tmp_path / "w", batch_size=3, progress=False)
    item = small_archive.items[0]
    with torch.inference_mode():
        direct = encoder.encode(prepare(load_image(item.path), encoder.config.preprocess)[None])[0].numpy()
    np.testing.assert_allclose(emb.vectors[0], direct / np.linalg.norm(direct), atol=1e-4)
