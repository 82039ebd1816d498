"""Seeded generator of a tiny scene-folder archive with good images of every kind plus known bad files.

Run as a script to look at it: ``python tests/data/make_tiny.py /tmp/tiny``.
"""

from __future__ import annotations

import struct
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Good:
    bands: int
    dtype: str
    width: int
    height: int
    raw: np.ndarray | None = None  # the written pixels [C, H, W] where exact decoding is expected


@dataclass
class TinyArchive:
    root: Path
    good: dict[str, Good] = field(default_factory=dict)  # id -> expectation
    bad: dict[str, str] = field(default_factory=dict)  # relative path -> word the skip reason contains
    ignored: list[str] = field(default_factory=list)  # relative paths that must not be reported


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def forged_png(width: int, height: int) -> bytes:
    """A PNG whose (valid, CRC-correct) header claims ``width x height`` but carries almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def write_geotiff(path: Path, data: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": str(data.dtype),
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 400000, 0, -10, 5340000),  # 10 m pixels, north up
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)


def _save(img: Image.Image, path: Path, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)


def _textured(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """Smooth-ish random pixels (noise plus a gradient) so JPEG keeps them recognisable."""
    base = np.linspace(0, 200, w)[None, :, None] + rng.normal(0, 20, (h, w, c))
    return np.clip(base, 0, 255).astype(np.uint8)


def write_tiny_archive(root: Path, seed: int = 0) -> TinyArchive:
    root = Path(root)
    rng = np.random.default_rng(seed)
    tiny = TinyArchive(root)

    def good(rel: str, bands: int, dtype: str, w: int, h: int, raw: np.ndarray | None = None) -> None:
        tiny.good[rel.rsplit(".", 1)[0]] = Good(bands, dtype, w, h, raw)

    # class "field": 8-bit RGB JPEGs, an exact 8-bit PNG, a grayscale PNG
    for k in range(2):
        _save(Image.fromarray(_textured(rng, 40, 48, 3)), root / f"field/field{k}.jpg", quality=90)
        good(f"field/field{k}.jpg", 3, "uint8", 48, 40)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    _save(Image.fromarray(rgb), root / "field/exact.png")
    good("field/exact.png", 3, "uint8", 32, 32, rgb.transpose(2, 0, 1))
    grey = rng.integers(0, 256, (24, 20), dtype=np.uint8)
    _save(Image.fromarray(grey), root / "field/grey.png")
    good("field/grey.png", 1, "uint8", 20, 24, grey[None])

    # class "forest": RGBA PNG, 16-bit full-range TIFF, palette PNG, grayscale+alpha PNG, BMP
    rgba = rng.integers(0, 256, (30, 30, 4), dtype=np.uint8)
    _save(Image.fromarray(rgba, "RGBA"), root / "forest/rgba.png")
    good("forest/rgba.png", 3, "uint8", 30, 30, rgba[..., :3].transpose(2, 0, 1))
    g16 = rng.integers(0, 65536, (20, 36), dtype=np.uint16)
    g16[0, 0] = 65535
    _save(Image.fromarray(g16), root / "forest/depth16.tif")
    good("forest/depth16.tif", 1, "uint16", 36, 20, g16[None])
    _save(Image.fromarray(_textured(rng, 26, 26, 3)).convert("P"), root / "forest/palette.png")
    good("forest/palette.png", 3, "uint8", 26, 26)
    la = Image.fromarray(np.stack([grey, grey], axis=-1), "LA")
    _save(la, root / "forest/grey_alpha.png")
    good("forest/grey_alpha.png", 1, "uint8", 20, 24, grey[None])
    _save(Image.fromarray(_textured(rng, 18, 22, 3)), root / "forest/scan.bmp")
    good("forest/scan.bmp", 3, "uint8", 22, 18)

    # class "urban": 4-band uint16 GeoTIFF (reflectance-like), 8-bit RGB TIFF
    ms = rng.integers(200, 4000, (4, 32, 32)).astype(np.uint16)
    write_geotiff(root / "urban/ms4.tif", ms)
    good("urban/ms4.tif", 4, "uint16", 32, 32, ms)
    _save(Image.fromarray(_textured(rng, 34, 34, 3)), root / "urban/plain.tiff")
    good("urban/plain.tiff", 3, "uint8", 34, 34)

    # ignored without a report: other extensions and hidden files
    for rel, data in [("notes.txt", b"hello"), ("urban/meta.json", b"{}"), ("field/.hidden.jpg", b"xx")]:
        (root / rel).write_bytes(data)
        tiny.ignored.append(rel)

    # bad files, each with a word its skip reason must contain
    (root / "field/empty.jpg").write_bytes(b"")
    tiny.bad["field/empty.jpg"] = "empty"
    (root / "forest/fake.png").write_text("this is not a PNG\n" * 20)
    tiny.bad["forest/fake.png"] = "not a recognised image"
    jpg = root / "field/whole.jpg"
    _save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), jpg, quality=95)
    (root / "urban/truncated.jpg").write_bytes(jpg.read_bytes()[: jpg.stat().st_size * 6 // 10])
    jpg.unlink()
    tiny.bad["urban/truncated.jpg"] = "truncated"
    png = root / "urban/whole.png"
    _save(Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)), png)
    (root / "urban/truncated.png").write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    png.unlink()
    tiny.bad["urban/truncated.png"] = "truncated"
    tif = root / "urban/whole.tif"
    write_geotiff(tif, rng.integers(0, 3000, (5, 40, 40)).astype(np.uint16))
    (root / "urban/truncated_ms.tif").write_bytes(tif.read_bytes()[: tif.stat().st_size // 2])
    tif.unlink()
    tiny.bad["urban/truncated_ms.tif"] = "truncated"
    _save(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)), root / "forest/tiny.png")
    tiny.bad["forest/tiny.png"] = "too small"
    (root / "urban/huge.png").write_bytes(forged_png(100_000, 100_000))
    tiny.bad["urban/huge.png"] = "too large"
    return tiny


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = write_tiny_archive(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-archive"))
    print(f"{len(out.good)} good, {len(out.bad)} bad files in {out.root}")
