import numpy as np
import pytest

from rsir.data.items import Archive, ImageError, Item
from rsir.embed.local import embed_archive
from rsir.embed.ray_engine import RayOptions, embed_archive_ray, plan


def test_plan_leaves_a_decoder_beside_each_actor() -> None:
    assert plan(RayOptions(), 2) == (1, 2)  # laptop: one actor using both cores, one decode task
    assert plan(RayOptions(cpus_per_actor=3), 64) == (16, 4)
    assert plan(RayOptions(actors=3, torch_threads=5), 64) == (3, 5)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the ray engine is an extra: pip install 'rsir[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def encoder():
    from rsir.models.encoders import load_encoder

    return load_encoder()


@pytest.fixture
def tiny(demo_archive, tmp_path) -> Archive:
    items = list(demo_archive.items[::40][:4])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg body")
    items.insert(1, Item("broken", bad, ("x",)))
    return Archive(tmp_path, "scene-folders", items)


@pytest.mark.slow  # starting Ray and its workers takes 20-60 s on 2 shared cores
def test_ray_matches_local_and_shares_its_shards(local_ray, encoder, tiny, tmp_path) -> None:
    local = embed_archive(tiny, encoder, tmp_path / "local", batch_size=2, shard_size=2, progress=False)
    work = tmp_path / "ray"
    remote = embed_archive_ray(tiny, encoder, work, batch_size=2, shard_size=2, progress=False)
    assert remote.ids == local.ids and "broken" not in remote.ids
    assert [f.path.name for f in remote.failed] == ["broken.jpg"]
    np.testing.assert_allclose(remote.vectors, local.vectors, atol=1e-5)
    assert sorted(p.name for p in work.glob("shard_*.npz")) == [
        "shard_000000000.npz",
        "shard_000000002.npz",
        "shard_000000004.npz",
    ]
    # A killed ray run resumes on the local engine (and back): only the missing shard is embedded.
    (work / "shard_000000002.npz").unlink()
    kept = (work / "shard_000000000.npz").stat().st_mtime_ns
    again = embed_archive(tiny, encoder, work, batch_size=2, shard_size=2, progress=False)
    assert (work / "shard_000000000.npz").stat().st_mtime_ns == kept
    np.testing.assert_allclose(again.vectors, local.vectors, atol=1e-5)
    with pytest.raises(ImageError, match="broken.jpg"):
        embed_archive_ray(tiny, encoder, work, shard_size=2, strict=True, progress=False)
