"""Footprint and acquisition date of an archive item, read from its headers (no pixels are decoded).

``Item.meta`` then carries ``bbox`` ([west, south, east, north] in WGS84 degrees) and ``date`` (ISO
``YYYY-MM-DD``), which index manifests keep and the search service filters on. Sources: a georeferenced
raster's CRS and bounds, and its ``TIFFTAG_DATETIME`` (or an acquisition-date tag); a BigEarthNet
patch's footprint comes from a band file here, its date from the labels JSON the archive reader parses
anyway. Anything missing or unreadable is simply absent: geo metadata never makes an item unusable.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

GEO_SUFFIXES = {".tif", ".tiff", ".jp2"}
# Tags GDAL exposes that hold an acquisition time, in the order they are trusted.
_DATE_TAGS = ("ACQUISITIONDATETIME", "ACQUISITION_DATE", "DATE_ACQUIRED", "TIFFTAG_DATETIME")
_DATE = re.compile(r"(\d{4})[-:/](\d{2})[-:/](\d{2})")


def iso_date(text: object) -> str | None:
    """'2017:06:13 10:10:31' / '2017-06-13T10:10:31Z' -> '2017-06-13'; None when there is no valid date."""
    from datetime import date

    match = _DATE.search(str(text)) if text else None
    if match is None:
        return None
    try:
        return date(*(int(g) for g in match.groups())).isoformat()
    except ValueError:
        return None


def raster_geo(path: Path) -> dict:
    """{"bbox", "date"} from a raster file's header, each only when present."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.warp import transform_bounds

    out: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                if ds.crs is not None:
                    west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
                    out["bbox"] = [round(v, 7) for v in (west, south, east, north)]
                tags = ds.tags()
    except Exception:  # noqa: BLE001 - a header we cannot read has no geo metadata, nothing more
        return out
    for tag in _DATE_TAGS:
        found = iso_date(tags.get(tag))
        if found:
            out["date"] = found
            break
    return out


def item_geo(path: Path) -> dict:
    """Geo metadata of an archive item's path (an image file, or a BigEarthNet patch folder)."""
    path = Path(path)
    if path.is_dir():  # a BigEarthNet patch: every band file has the patch's footprint
        bands = sorted(path.glob("*_B0[2-4].tif")) or sorted(path.glob("*.tif"))
        return raster_geo(bands[0]) if bands else {}
    if path.suffix.lower() in GEO_SUFFIXES:
        return raster_geo(path)
    return {}
