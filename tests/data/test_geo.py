"""Footprints and dates from headers: GeoTIFF CRS/bounds/tags and BigEarthNet's labels JSON."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from shared_data import shared_or_skip

from rsir.data.archives import open_archive
from rsir.data.geo import iso_date


def _geotiff(path: Path, crs: str | None, origin: tuple[float, float], res: float, tags: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).integers(0, 4000, (4, 32, 32), dtype=np.uint16)
    profile = dict(driver="GTiff", width=32, height=32, count=4, dtype="uint16")
    if crs:
        profile.update(crs=crs, transform=Affine(res, 0.0, origin[0], 0.0, -res, origin[1]))
    with warnings.catch_warnings():  # the plain (not georeferenced) file is the point of one case
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", **profile)
    with dst:
        dst.write(data)
        if tags:
            dst.update_tags(**tags)
    return path


def test_geotiff_footprint_in_wgs84_and_date_from_tiff_tag(tmp_path: Path):
    # Lat/lon file: the bbox is its own bounds. UTM 33N: easting 500 km on the equator is 15 E, 0 N.
    _geotiff(
        tmp_path / "a" / "latlon.tif", "EPSG:4326", (13.0, 52.5), 0.001, {"TIFFTAG_DATETIME": "2021:07:04 10:30:00"}
    )
    _geotiff(tmp_path / "a" / "utm.tif", "EPSG:32633", (500000.0, 320.0), 10.0)
    _geotiff(tmp_path / "b" / "plain.tif", None, (0, 0), 1.0, {"TIFFTAG_DATETIME": "not a date"})
    items = {it.id: it for it in open_archive(tmp_path).items}
    assert items["a/latlon"].meta["bbox"] == pytest.approx([13.0, 52.468, 13.032, 52.5])
    assert items["a/latlon"].meta["date"] == "2021-07-04"
    west, south, east, north = items["a/utm"].meta["bbox"]
    assert west == pytest.approx(15.0, abs=1e-6) and south == pytest.approx(0.0, abs=1e-6)
    assert east == pytest.approx(15.0 + 320 / 111_320, abs=1e-4) and north == pytest.approx(320 / 110_574, abs=1e-4)
    assert "date" not in items["a/utm"].meta
    assert "bbox" not in items["b/plain"].meta and "date" not in items["b/plain"].meta  # still a usable item
    assert items["b/plain"].meta["bands"] == 4


def test_bigearthnet_patches_carry_their_date_and_footprint():
    items = open_archive(shared_or_skip("bigearthnet-s2-example")).items
    assert items
    for it in items:
        (labels_json,) = it.path.glob("*_labels_metadata.json")
        assert it.meta["date"] == json.loads(labels_json.read_text())["acquisition_date"][:10]
        west, south, east, north = it.meta["bbox"]
        assert -25 < west < east < 45 and 34 < south < north < 72  # Europe
        assert (north - south) * 110_574 == pytest.approx(1200, rel=0.1)  # 120 px x 10 m (plus the envelope)


@pytest.mark.parametrize(
    ("text", "want"),
    [("2017-06-13 10:10:31", "2017-06-13"), ("2021:07:04 10:30:00", "2021-07-04"), ("2020-02-30", None), ("", None)],
)
def test_iso_date(text: str, want: str | None):
    assert iso_date(text) == want
