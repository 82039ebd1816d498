"""Decoding and validating images: every bad input is turned into an ``ImageError`` here.

Output contract of ``load_image``: ``float32 [C, H, W]`` in ``[0, 1]``.

Values are scaled by ``rsir.data.pixels.scale_to_unit`` (8-bit /255, multispectral stretched, see there).

Decoders: Pillow for JPEG/PNG/BMP (a 16-bit RGB PNG is read as 8-bit) and plain 8-bit TIFF;
rasterio (GDAL) for other TIFFs (16-bit, float, more than 4 bands) and for headers Pillow refuses as
decompression bombs, so ``MAX_PIXELS`` is the limit that applies. A BigEarthNet patch folder (one
GeoTIFF per band) loads as 12 bands on the 10 m grid.
"""

from __future__ import annotations

import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsir.data.items import ImageError
from rsir.data.pixels import BIGEARTHNET_BANDS, BIGEARTHNET_RGB, scale_to_unit, to_rgb_uint8

__all__ = [  # scaling lives in rsir.data.pixels; re-exported for callers of this module
    "BIGEARTHNET_BANDS",
    "BIGEARTHNET_RGB",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MIN_SIDE",
    "ImageInfo",
    "ImageTooLarge",
    "is_bigearthnet_patch",
    "load_image",
    "probe_image",
    "scale_to_unit",
    "to_rgb_uint8",
]

MIN_SIDE = 16
MAX_PIXELS = 20000 * 20000
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})

_PIL_FORMATS = ["JPEG", "PNG", "TIFF", "BMP"]  # JPEG also opens MPO files
_GDAL_DRIVERS = ["GTiff", "PNG", "JPEG", "BMP"]
# Pillow mode -> (bands, dtype, mode to convert to before np.asarray or None)
_PIL_MODES = {
    "1": (1, "uint8", "L"),
    "L": (1, "uint8", None),
    "LA": (1, "uint8", "L"),
    "La": (1, "uint8", "L"),
    "P": (3, "uint8", "RGBA"),
    "PA": (3, "uint8", "RGBA"),
    "RGB": (3, "uint8", None),
    "RGBA": (3, "uint8", "RGBA"),
    "RGBa": (3, "uint8", "RGBA"),
    "RGBX": (3, "uint8", "RGB"),
    "CMYK": (3, "uint8", "RGB"),
    "YCbCr": (3, "uint8", "RGB"),
    "I;16": (1, "uint16", None),
    "I;16L": (1, "uint16", None),
    "I;16B": (1, "uint16", None),
    "I;16N": (1, "uint16", None),
    "I": (1, "int32", None),
    "F": (1, "float32", None),
}
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    bands: int
    dtype: str


class ImageTooLarge(ImageError):
    """More pixels than the caller allows (found from the header, before any decoding)."""


def _bad(path: Path, reason: str, kind: type[ImageError] = ImageError) -> ImageError:
    err = kind(f"{path}: {reason}")
    err.path, err.reason = path, reason  # archives report the reason without the path
    return err


class _NotForPillow(Exception):
    pass


def _gdal_reason(e: BaseException) -> str:
    """GDAL's own message hides in the cause of rasterio's 'Read failed'."""
    cause = e.__cause__ or e
    msg = cause.args[-1] if cause.args else str(cause)
    return f"truncated or corrupt ({msg})"


# ---------------------------------------------------------------- header checks


def _check_file(path: Path) -> int:
    """File size in bytes of an existing, non-empty regular file."""
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise _bad(path, "no such file") from e
    if stat.S_ISDIR(st.st_mode):
        raise _bad(path, "a folder, not an image (and not a BigEarthNet patch)")
    if st.st_size == 0:
        raise _bad(path, "empty file (0 bytes)")
    return st.st_size


def _check_size(path: Path, width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
    if width * height > max_pixels:
        raise _bad(path, f"too large: {width}x{height} px (limit {max_pixels} pixels)", ImageTooLarge)
    if min(width, height) < MIN_SIDE:
        raise _bad(path, f"too small: {width}x{height} px (minimum side {MIN_SIDE})")


def _tail(path: Path, size: int, n: int) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, size - n))
        return f.read()


def _tail_complete(path: Path, size: int, fmt: str) -> bool | None:
    """Cheap truncation test from the file's end; None when the format has no such test."""
    if fmt in ("JPEG", "MPO"):  # MPO: multi-picture JPEG, which Pillow's JPEG opener returns
        return b"\xff\xd9" in _tail(path, size, 1024)  # EOI cannot occur inside entropy-coded data
    if fmt == "PNG":
        return _tail(path, size, 12) == _PNG_IEND
    return None


def _pil_complete(path: Path, size: int, img) -> bool:
    """False means 'decode fully to be sure' (e.g. bytes after a JPEG's end, or a BMP)."""
    if img.format == "TIFF":
        tags = img.tag_v2
        offsets = tags.get(273) or tags.get(324) or ()
        counts = tags.get(279) or tags.get(325) or ()
        return bool(offsets) and max(o + c for o, c in zip(offsets, counts, strict=False)) <= size
    return bool(_tail_complete(path, size, img.format))


def _pil_open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path, formats=_PIL_FORMATS)
    except Image.DecompressionBombError as e:
        raise _NotForPillow from e  # Pillow's own limit is below MAX_PIXELS: let GDAL read the header
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise _NotForPillow from e


def _pil_suits(img) -> bool:
    if img.mode not in _PIL_MODES:
        return False
    if img.format == "TIFF":  # Pillow narrows 16-bit RGB and drops a 4th non-alpha band: GDAL reads those
        bits = img.tag_v2.get(258) or (8,)
        if img.mode == "RGBX":
            return False
        return all(b in (1, 8) for b in bits) or (len(bits) == 1 and img.mode.startswith(("I", "F")))
    return True


def _raster_open(path: Path):
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as e:
        raise _bad(path, "not a recognised image (corrupt or unknown format)") from e
    if ds.driver not in _GDAL_DRIVERS:  # GDAL also reads text grids, CSV...: not images for us
        ds.close()
        raise _bad(path, f"not a recognised image (GDAL reads it as {ds.driver})")
    return ds


def _raster_keep(ds) -> list[int]:
    """1-based band indexes to read: alpha bands are dropped."""
    from rasterio.enums import ColorInterp

    keep = [i + 1 for i, ci in enumerate(ds.colorinterp) if ci != ColorInterp.alpha]
    return keep or [1]


def _raster_info(path: Path, size: int, ds, verify: bool, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    _check_size(path, ds.width, ds.height, max_pixels)
    if ds.colorinterp and ds.colorinterp[0].name == "palette":
        raise _bad(path, "palette image that Pillow cannot read")
    keep = _raster_keep(ds)
    if verify and ds.driver != "GTiff":  # huge JPEG / PNG: reading the last pixel would decode it all
        if _tail_complete(path, size, ds.driver) is False:  # GDAL's driver names match Pillow's formats
            raise _bad(path, "truncated or corrupt (file ends early)")
    elif verify:  # the last TIFF block is the last written: reading one pixel of it detects truncation
        try:
            ds.read(keep, window=((ds.height - 1, ds.height), (ds.width - 1, ds.width)))
        except Exception as e:
            raise _bad(path, _gdal_reason(e)) from e
    return ImageInfo(ds.width, ds.height, len(keep), str(ds.dtypes[0]))


def _probe_file(path: Path, verify: bool, max_pixels: int = MAX_PIXELS) -> tuple[ImageInfo, str]:
    size = _check_file(path)
    try:
        img = _pil_open(path)
    except _NotForPillow:
        img = None
    if img is not None:
        with img:
            if _pil_suits(img):
                _check_size(path, *img.size, max_pixels)
                if verify and not _pil_complete(path, size, img):
                    _pil_decode(path, img)
                bands, dtype, _ = _PIL_MODES[img.mode]
                return ImageInfo(img.size[0], img.size[1], bands, dtype), "pil"
    with _raster_open(path) as ds:
        return _raster_info(path, size, ds, verify, max_pixels), "raster"


# ---------------------------------------------------------------- decoding


def _pil_decode(path: Path, img) -> np.ndarray:
    try:
        img.load()
        target = _PIL_MODES[img.mode][2]
        if target is not None:
            img = img.convert(target)
        arr = np.asarray(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise _bad(path, f"truncated or corrupt ({e})") from e
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        return arr[None]
    return arr[..., :3].transpose(2, 0, 1)  # RGBA -> RGB


def _decode_file(path: Path, max_pixels: int = MAX_PIXELS, max_values: int | None = None) -> tuple[np.ndarray, bool]:
    info, decoder = _probe_file(path, verify=False, max_pixels=max_pixels)  # the header first: no bomb decodes
    if max_values is not None and info.width * info.height * info.bands > max_values:
        reason = f"too large: {info.width}x{info.height} px x {info.bands} bands (limit {max_values} values)"
        raise _bad(path, reason, ImageTooLarge)
    if decoder == "pil":
        img = _pil_open(path)
        with img:
            arr = _pil_decode(path, img)
    else:
        with _raster_open(path) as ds:
            try:
                arr = ds.read(_raster_keep(ds))
            except Exception as e:
                raise _bad(path, _gdal_reason(e)) from e
    return arr, info.bands >= 4


# ---------------------------------------------------------------- BigEarthNet patch folders


def bigearthnet_band_files(folder: Path) -> dict[str, Path]:
    """Band name -> GeoTIFF of one BigEarthNet patch folder (may be incomplete)."""
    found = {}
    for f in folder.iterdir():
        stem = f.stem
        if f.suffix.lower() in (".tif", ".tiff") and "_" in stem:
            band = stem.rsplit("_", 1)[1]
            if band in BIGEARTHNET_BANDS:
                found[band] = f
    return found


def is_bigearthnet_patch(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and any(path.glob("*_B02.tif"))


def _bigearthnet_files(folder: Path) -> dict[str, Path]:
    files = bigearthnet_band_files(folder)
    missing = [b for b in BIGEARTHNET_BANDS if b not in files]
    if missing:
        raise _bad(folder, f"BigEarthNet patch lacks bands {', '.join(missing)}")
    empty = [b for b, f in files.items() if f.stat().st_size == 0]
    if empty:
        raise _bad(folder, f"empty band files {', '.join(empty)}")
    return files


def _probe_bigearthnet(folder: Path, max_pixels: int = MAX_PIXELS) -> tuple[ImageInfo, dict[str, Path]]:
    files = _bigearthnet_files(folder)
    with _raster_open(files["B02"]) as ds:  # B02 is on the 10 m grid: it fixes the output size
        _check_size(folder, ds.width, ds.height, max_pixels)
        return ImageInfo(ds.width, ds.height, len(BIGEARTHNET_BANDS), str(ds.dtypes[0])), files


def _load_bigearthnet(folder: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """12 bands resampled (bilinear) onto the B02 grid: 120 x 120 for BigEarthNet."""
    from rasterio.enums import Resampling

    info, files = _probe_bigearthnet(folder, max_pixels)
    out = np.empty((len(BIGEARTHNET_BANDS), info.height, info.width), dtype=np.float32)
    for i, band in enumerate(BIGEARTHNET_BANDS):
        with _raster_open(files[band]) as ds:
            try:
                out[i] = ds.read(1, out_shape=out.shape[1:], resampling=Resampling.bilinear)
            except Exception as e:
                raise _bad(files[band], _gdal_reason(e)) from e
    return out


# ---------------------------------------------------------------- public API


def probe_image(path: Path) -> ImageInfo:
    """Size, band count and dtype from the header (plus a cheap truncation check); raises ImageError."""
    path = Path(path)
    if path.is_dir() and is_bigearthnet_patch(path):
        return _probe_bigearthnet(path)[0]
    return _probe_file(path, verify=True)[0]


def load_image(
    path: Path, bands: Sequence[int] | None = None, *, max_pixels: int = MAX_PIXELS, max_values: int | None = None
) -> np.ndarray:
    """Decode an image file or BigEarthNet patch folder to float32 ``[C, H, W]`` in [0, 1].

    ``bands`` are 0-based indexes into the output channels (after scaling, which always uses all
    bands, so ``load_image(p, [3, 2, 1])`` equals ``load_image(p)[[3, 2, 1]]``). An image with more
    than ``max_pixels`` pixels, or of a single file more than ``max_values`` pixels x bands, raises
    :class:`ImageTooLarge` from its header, before decoding.
    """
    path = Path(path)
    if path.is_dir() and is_bigearthnet_patch(path):
        out = scale_to_unit(_load_bigearthnet(path, max_pixels), multispectral=True)
    else:
        raw, multispectral = _decode_file(path, max_pixels, max_values)
        out = scale_to_unit(raw, multispectral)
    if bands is not None:
        idx = list(bands)
        if not idx or min(idx) < 0 or max(idx) >= out.shape[0]:
            raise ValueError(f"bands {idx} out of range for {out.shape[0]}-band image {path}")
        out = out[idx]
    return np.ascontiguousarray(out, dtype=np.float32)
