"""Decoding, scaling and validation of single images and BigEarthNet patch folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from make_tiny import forged_png, write_geotiff
from PIL import Image

from rsir.data.images import (
    BIGEARTHNET_BANDS,
    MIN_SIDE,
    ImageInfo,
    is_bigearthnet_patch,
    load_image,
    probe_image,
    scale_to_unit,
    to_rgb_uint8,
)
from rsir.data.items import ImageError


def _file(tiny, item_id: str) -> Path:
    (path,) = [p for p in tiny.root.rglob("*") if p.with_suffix("").relative_to(tiny.root).as_posix() == item_id]
    return path


def test_good_files_decode_to_unit_float_with_probed_shape(tiny):
    for item_id, want in tiny.good.items():
        path = _file(tiny, item_id)
        info = probe_image(path)
        assert info == ImageInfo(want.width, want.height, want.bands, want.dtype), item_id
        arr = load_image(path)
        assert arr.dtype == np.float32 and arr.flags.c_contiguous, item_id
        assert arr.shape == (want.bands, want.height, want.width), item_id
        assert arr.min() >= 0.0 and arr.max() <= 1.0, item_id


def test_lossless_8bit_and_16bit_are_scaled_exactly(tiny):
    for item_id in ("field/exact", "field/grey", "forest/rgba", "forest/grey_alpha"):
        raw = tiny.good[item_id].raw
        np.testing.assert_allclose(load_image(_file(tiny, item_id)), raw / 255.0, atol=1e-6)
    raw16 = tiny.good["forest/depth16"].raw
    np.testing.assert_allclose(load_image(_file(tiny, "forest/depth16")), raw16 / 65535.0, atol=1e-6)


def test_multispectral_uint16_gets_a_joint_percentile_stretch(tiny):
    raw = tiny.good["urban/ms4"].raw.astype(np.float64)
    arr = load_image(_file(tiny, "urban/ms4"))
    lo, hi = np.percentile(raw, [2, 98])
    np.testing.assert_allclose(arr, np.clip((raw - lo) / (hi - lo), 0, 1), atol=1e-5)


def test_bands_select_after_scaling(tiny):
    path = _file(tiny, "urban/ms4")
    np.testing.assert_array_equal(load_image(path, bands=[3, 2, 1]), load_image(path)[[3, 2, 1]])
    with pytest.raises(ValueError, match="out of range"):
        load_image(path, bands=[4])


@pytest.mark.parametrize("rel", ["field/empty.jpg", "forest/fake.png", "urban/truncated.jpg", "forest/tiny.png"])
def test_bad_files_raise_image_error_on_load(tiny, rel):
    with pytest.raises(ImageError, match=tiny.bad[rel]):
        load_image(tiny.root / rel)


def test_bad_files_raise_image_error_on_probe(tiny):
    for rel, reason in tiny.bad.items():
        with pytest.raises(ImageError, match=reason) as caught:
            probe_image(tiny.root / rel)
        assert str(tiny.root / rel) in str(caught.value)


def test_missing_file_and_plain_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_size_limits_from_the_header(tmp_path):
    edge = tmp_path / "edge.png"
    Image.fromarray(np.zeros((MIN_SIDE, 300), dtype=np.uint8)).save(edge)
    assert probe_image(edge).height == MIN_SIDE
    thin = tmp_path / "thin.png"
    Image.fromarray(np.zeros((MIN_SIDE - 1, 300), dtype=np.uint8)).save(thin)
    with pytest.raises(ImageError, match="too small"):
        probe_image(thin)
    # Between Pillow's bomb limit (~179 Mpx) and MAX_PIXELS: GDAL reads the header (decoding would fail)
    big = tmp_path / "big.png"
    big.write_bytes(forged_png(15000, 15000))
    assert probe_image(big) == ImageInfo(15000, 15000, 3, "uint8")
    huge = tmp_path / "huge.png"
    huge.write_bytes(forged_png(20001, 20000))
    with pytest.raises(ImageError, match="too large"):
        load_image(huge)


def test_truncated_multispectral_geotiff(tiny):
    with pytest.raises(ImageError, match="truncated"):
        load_image(tiny.root / "urban/truncated_ms.tif")


def test_scaling_rules():
    low = np.array([[[0, 1000], [2000, 3000]]], dtype=np.uint16)  # 12-bit counts: stretched, not /65535
    assert scale_to_unit(low, multispectral=False).max() == 1.0
    unit = np.array([[[0.0, 0.25], [0.5, 0.75]]], dtype=np.float32)
    np.testing.assert_array_equal(scale_to_unit(unit, multispectral=False), unit)
    nan = np.array([[[np.nan, 1.0], [5.0, 9.0]]], dtype=np.float32)
    out = scale_to_unit(nan, multispectral=False)
    assert out[0, 0, 0] == 0.0 and np.isfinite(out).all()
    assert not scale_to_unit(np.full((4, 5, 5), 7, np.uint16), multispectral=True).any()


def test_to_rgb_uint8_picks_bands():
    grey = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(1, 16, 16)
    rgb = to_rgb_uint8(grey)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == rgb[..., 2]).all() and rgb.max() == 255 and rgb.min() == 0
    colour = np.zeros((3, 16, 16), np.float32)
    colour[0] = 1.0
    assert (to_rgb_uint8(colour)[..., 0] == 255).all() and not to_rgb_uint8(colour)[..., 1:].any()
    ben = np.zeros((12, 16, 16), np.float32)
    ben[3, :, 8:] = 0.5  # B04 is red
    out = to_rgb_uint8(ben)
    assert out[0, 15, 0] == 255 and out[0, 0, 0] == 0 and not out[..., 1:].any()


def test_bigearthnet_patch_loads_12_bands_on_the_10m_grid(bigearthnet_dir):
    import rasterio

    patch = sorted(p for p in bigearthnet_dir.iterdir() if p.is_dir())[0]
    assert is_bigearthnet_patch(patch)
    assert probe_image(patch) == ImageInfo(120, 120, 12, "uint16")
    arr = load_image(patch)
    assert arr.shape == (12, 120, 120) and arr.dtype == np.float32
    assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1
    # band order: index 1 is B02 (native 120 px; the stretch is affine), index 0 is B01 upsampled from 20 px
    with rasterio.open(next(patch.glob("*_B02.tif"))) as ds:
        b02 = ds.read(1).astype(np.float64)
    assert np.corrcoef(arr[1].ravel(), b02.ravel())[0, 1] > 0.99
    assert len(np.unique(arr[0])) > 400  # bilinear, not nearest (20x20 = 400 distinct blocks at most)
    assert to_rgb_uint8(arr).shape == (120, 120, 3)


def test_bigearthnet_patch_with_missing_band(bigearthnet_dir, tmp_path):
    src = sorted(p for p in bigearthnet_dir.iterdir() if p.is_dir())[0]
    patch = Path(shutil.copytree(src, tmp_path / src.name))
    next(patch.glob("*_B8A.tif")).unlink()
    with pytest.raises(ImageError, match="B8A"):
        load_image(patch)
    assert "B8A" in BIGEARTHNET_BANDS


def test_palette_tiff_and_rgba_geotiff(tmp_path):
    pal = tmp_path / "pal.tif"
    Image.fromarray(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32) % 200).convert("P").save(pal)
    assert load_image(pal).shape == (3, 32, 32)
    rgba = tmp_path / "rgba.tif"
    Image.fromarray(np.full((20, 20, 4), 128, np.uint8), "RGBA").save(rgba)
    assert load_image(rgba).shape == (3, 20, 20)
    ms8 = tmp_path / "ms8.tif"
    write_geotiff(ms8, np.full((5, 20, 20), 51, np.uint8))
    np.testing.assert_allclose(load_image(ms8), 0.2, atol=1e-6)
