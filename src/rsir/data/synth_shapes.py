"""Change shapes and image degradations of the v2 semi-synthetic generator (rsir.data.synth_v2).

- Masks: object-sized, irregular, anywhere: procedural building-like clusters of rotated boxes, road-like
  bent strips and field-like polygons, or real change masks (LEVIR-CD / DSIFN style binary PNGs) randomly
  flipped, rotated, cropped and thinned to some of their connected parts. Every mask covers 2-35% of the
  image; target areas are log-uniform, so the median is about 8%.
- Feathering: the hard mask blurred on both sides of its edge (sigma 1-3 px); the pasted content's colour
  statistics moved half way to the scene's (harmonise).
- Acquisition: each date gets its own small affine (shift of a few px, rotation under 1.5 degrees, a slight
  zoom so no border shows), blur, noise, and photometric jitter from ONE distribution for every image of
  either kind of pair, so brightness or colour never tells changed from unchanged pairs; and a smooth,
  spatially varying illumination (haze, thin-cloud shadow, vignetting: a gain field of a few hundred px
  scale). Without it, a nearly uniform scene (a 320 m Sentinel-2 tile) that gets a patch of another class
  changes its colour spread beyond any global jitter; with it, both dates' spreads vary anyway.
"""

from __future__ import annotations

import functools
import math
import random
from pathlib import Path

import numpy as np

MIN_AREA, MAX_AREA = 0.02, 0.35
SHAPES = ("building", "road", "field")


def target_area(rng: random.Random) -> float:
    """Log-uniform in [MIN_AREA, MAX_AREA] (median ~8%): most changes are object-sized, a few are large."""
    return math.exp(rng.uniform(math.log(MIN_AREA), math.log(MAX_AREA)))


def _polygon_mask(polys: list[np.ndarray], size: int, width: int = 0) -> np.ndarray:
    """Filled polygons (or polylines of ``width`` px when width > 0) as a bool [size, size] mask."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for p in polys:
        pts = [tuple(map(float, q)) for q in p]
        if width:
            draw.line(pts, fill=255, width=width, joint="curve")
        else:
            draw.polygon(pts, fill=255)
    return np.asarray(img) > 127


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _building(rng: random.Random, size: int, area: float) -> np.ndarray:
    """1-5 rotated boxes around a centre (a building or a small block of them)."""
    n = rng.randint(1, 5)
    each = area * size * size / n
    centre = np.array([rng.uniform(0, size), rng.uniform(0, size)])
    angle = rng.uniform(0, math.pi)
    polys = []
    for _ in range(n):
        aspect = rng.uniform(0.4, 1.0)
        w = math.sqrt(each / aspect)
        h = w * aspect
        box = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
        offset = np.array([rng.gauss(0, 1), rng.gauss(0, 1)]) * math.sqrt(each) * 1.2
        polys.append(_rotate(box, angle + rng.uniform(-0.15, 0.15)) + centre + offset)
    return _polygon_mask(polys, size)


def _road(rng: random.Random, size: int, area: float) -> np.ndarray:
    """A strip with one or two bends across part of the image (a road, a canal, a track)."""
    length = rng.uniform(0.6, 1.4) * size
    width = max(3, int(round(area * size * size / length)))
    start = np.array([rng.uniform(0, size), rng.uniform(0, size)])
    angle = rng.uniform(0, 2 * math.pi)
    pts, pos = [start], start
    bends = rng.randint(1, 3)
    for _ in range(bends):
        angle += rng.uniform(-0.8, 0.8)
        pos = pos + length / bends * np.array([math.cos(angle), math.sin(angle)])
        pts.append(pos)
    return _polygon_mask([np.array(pts)], size, width=width)


def _field(rng: random.Random, size: int, area: float) -> np.ndarray:
    """An irregular polygon of 4-8 vertices (a field, a clearing, a lot)."""
    k = rng.randint(4, 8)
    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(k))
    radii = np.array([rng.uniform(0.6, 1.0) for _ in range(k)])
    unit = np.stack([np.cos(angles), np.sin(angles)], -1) * radii[:, None]
    unit[:, 1] *= rng.uniform(0.5, 1.0)
    x, y = unit[:, 0], unit[:, 1]
    unit_area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    scale = math.sqrt(area * size * size / max(unit_area, 1e-6))
    centre = np.array([rng.uniform(0, size), rng.uniform(0, size)])
    return _polygon_mask([_rotate(unit * scale, rng.uniform(0, math.pi)) + centre], size)


def load_real_masks(root: str | Path, size: int) -> list[np.ndarray]:
    """Binary change masks (``**/label/*.png``, or every PNG when there is no label folder) resized to
    ``size``; masks without change are left out."""
    from PIL import Image

    root = Path(root)
    files = sorted(root.rglob("label/*.png")) or sorted(root.rglob("*.png"))
    masks = []
    for f in files:
        with Image.open(f) as im:
            m = np.asarray(im.convert("L").resize((size, size), Image.Resampling.NEAREST)) > 127
        if m.mean() >= 0.005:
            masks.append(m)
    if not masks:
        raise ValueError(f"{root}: no binary change masks (label/*.png with some change) found")
    return masks


def _real(rng: random.Random, size: int, area: float, masks: list[np.ndarray]) -> np.ndarray:
    """A real mask, flipped / rotated, cropped (zooms in) and thinned to connected parts near ``area``."""
    from PIL import Image
    from scipy import ndimage

    m = np.rot90(rng.choice(masks), rng.randint(0, 3))
    if rng.random() < 0.5:
        m = m[:, ::-1]
    crop = rng.randint(size // 2, size)
    r, c = rng.randint(0, size - crop), rng.randint(0, size - crop)
    m = np.asarray(Image.fromarray(m[r : r + crop, c : c + crop].astype(np.uint8) * 255).resize((size, size))) > 127
    labels, n = ndimage.label(m)
    if n == 0:
        return m
    parts = list(range(1, n + 1))
    rng.shuffle(parts)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(n + 1))
    keep, total = [], 0.0
    for p in parts:  # add parts in random order until the target area is reached
        if total >= area * size * size:
            break
        keep.append(p)
        total += sizes[p]
    return np.isin(labels, keep)


def change_mask(
    rng: random.Random, size: int, real_masks: list[np.ndarray] | None = None, tries: int = 30
) -> tuple[np.ndarray, str]:
    """(bool [size, size] mask covering MIN_AREA..MAX_AREA of the image, shape kind)."""
    kinds = SHAPES + (("real",) if real_masks else ())
    for _ in range(tries):
        kind, area = rng.choice(kinds), target_area(rng)
        if kind == "building":
            m = _building(rng, size, area)
        elif kind == "road":
            m = _road(rng, size, area)
        elif kind == "field":
            m = _field(rng, size, area)
        else:
            assert real_masks  # "real" is a choice only when masks were given
            m = _real(rng, size, area, real_masks)
        if MIN_AREA <= m.mean() <= MAX_AREA:
            return m, kind
    # Rare (shapes mostly outside the image): a field in the middle always fits.
    c = size / 2
    half = size * math.sqrt(0.08) / 2
    box = np.array([[c - half, c - half], [c + half, c - half], [c + half, c + half], [c - half, c + half]])
    return _polygon_mask([box], size), "field"


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """float32 [H, W] alpha: the mask blurred across its edge (both sides) by a Gaussian of ``sigma`` px."""
    from scipy import ndimage

    return np.clip(ndimage.gaussian_filter(mask.astype(np.float32), sigma), 0, 1)


def harmonise(donor: np.ndarray, scene: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """float32 ``donor`` with each channel's mean and std moved ``strength`` of the way to ``scene``'s.

    Compositing practice (no seam of foreign colour), and needed on nearly uniform scenes (320 m
    Sentinel-2 tiles): a patch of another class in its own colours moves the tile's colour spread beyond
    any acquisition jitter, a global cue of "changed" (colour probe 0.61 with the illumination field alone,
    0.55 with both, on 2,500 Sentinel-2 pairs). The new content keeps its texture and half its colour shift.
    """
    d, s = donor.astype(np.float32).reshape(-1, 3), scene.astype(np.float32).reshape(-1, 3)
    md, sd, ms, ss = d.mean(0), d.std(0) + 1e-3, s.mean(0), s.std(0) + 1e-3
    target_mean, target_std = md + strength * (ms - md), sd + strength * (ss - sd)
    return ((donor.astype(np.float32) - md) / sd * target_std + target_mean).astype(np.float32)


def blend(before: np.ndarray, donor: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = before.astype(np.float32) * (1 - alpha[..., None]) + donor.astype(np.float32) * alpha[..., None]
    return (np.clip(out, 0, 255) + 0.5).astype(np.uint8)


def acquisition_params(rng: random.Random) -> dict:
    """One date's acquisition: registration, blur, noise and photometric jitter, all from ONE distribution."""
    return {
        "shift_px": [round(rng.uniform(-3, 3), 2), round(rng.uniform(-3, 3), 2)],
        "rotation_deg": round(rng.uniform(-1.5, 1.5), 3),
        "zoom": round(rng.uniform(1.03, 1.06), 4),
        "blur_sigma": round(rng.uniform(0, 1.5), 3),
        "noise_std": round(rng.uniform(0, 6), 3),
        "brightness": round(math.exp(rng.gauss(0, 0.15)), 4),
        "contrast": round(math.exp(rng.gauss(0, 0.15)), 4),
        "saturation": round(math.exp(rng.gauss(0, 0.2)), 4),
        "hue_rad": round(rng.gauss(0, 0.06), 4),
        "illumination": round(rng.uniform(0.05, 0.35), 3),  # std of the log gain field
        "illumination_scale_px": round(rng.uniform(48, 160), 1),
    }


@functools.lru_cache(maxsize=64)
def _zoom_matrix(n_in: int, factor: float, n_keep: int) -> np.ndarray:
    """float64 [n_keep, n_in]: the first ``n_keep`` outputs of ``ndimage.zoom(line, factor, order=3)`` of a
    spline-filtered line of ``n_in`` values (mode "constant") as a matrix: its columns are the zoom of unit
    impulses (weights times 1.0 and sums of exact zeros, so the very weights ndimage uses)."""
    from scipy import ndimage

    eye = np.eye(n_in)
    return np.stack([ndimage.zoom(e, factor, order=3, prefilter=False)[:n_keep] for e in eye], 1)


def illumination_field(shape: tuple[int, int], strength: float, scale_px: float, seed: int) -> np.ndarray:
    """float32 [H, W, 3] multiplicative gain exp(strength * F): F a smooth zero-mean, unit-std random field of
    about ``scale_px`` correlation length, mostly shared by the channels (a slight colour tint varies too)."""
    from scipy import ndimage

    h, w = shape
    rng = np.random.default_rng([seed, 1])
    cells = (max(2, math.ceil(h / scale_px) + 2), max(2, math.ceil(w / scale_px) + 2))
    coarse = rng.normal(size=(4, *cells)).astype(np.float32)  # one shared field + one tint per channel
    # = ndimage.zoom(c, (h / (cells[0] - 1), w / (cells[1] - 1)), order=3)[:h, :w] as two small matrix products
    # (zoom is separable; the whole-image cubic zoom was ~60% of generation time). The float64 sums run in
    # another order; after the float32 cast every value tested is identical (tests, docs/benchmarks.md).
    rows, cols = _zoom_matrix(cells[0], h / (cells[0] - 1), h), _zoom_matrix(cells[1], w / (cells[1] - 1), w)
    spline = (ndimage.spline_filter(c, 3, output=np.float64, mode="constant") for c in coarse)
    fields = np.stack([(rows @ s @ cols.T).astype(np.float32) for s in spline])
    fields = (fields - fields.mean(axis=(1, 2), keepdims=True)) / (fields.std(axis=(1, 2), keepdims=True) + 1e-6)
    log_gain = fields[0][..., None] + 0.3 * np.moveaxis(fields[1:], 0, -1)
    return np.exp(strength * log_gain / math.sqrt(1.09)).astype(np.float32)


def acquire(image: np.ndarray, p: dict, seed: int) -> np.ndarray:
    """uint8 [H, W, 3] as seen by one acquisition ``p`` (acquisition_params); ``seed`` seeds the noise."""
    from scipy import ndimage

    from rsir.data.synth import rotate_hue

    x = image.astype(np.float32) / 255.0
    h, w = x.shape[:2]
    angle = math.radians(p["rotation_deg"])
    c, s = math.cos(angle), math.sin(angle)
    # output -> input coordinates: rotate about the centre, zoom in, shift
    m = np.array([[c, -s], [s, c]]) / p["zoom"]
    centre = np.array([h / 2, w / 2])
    offset = centre - m @ centre + np.array(p["shift_px"])
    x = np.stack([ndimage.affine_transform(x[..., k], m, offset, order=1, mode="reflect") for k in range(3)], -1)
    if p["blur_sigma"] > 0.05:
        x = ndimage.gaussian_filter(x, (p["blur_sigma"], p["blur_sigma"], 0))
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * p["saturation"]
    mean = x.mean()
    x = ((x - mean) * p["contrast"] + mean) * p["brightness"]
    if p.get("illumination"):
        x = x * illumination_field((h, w), p["illumination"], p["illumination_scale_px"], seed)
    x = rotate_hue(x, p["hue_rad"])
    if p["noise_std"] > 0:
        x = x + np.random.default_rng(seed).normal(0, p["noise_std"] / 255.0, x.shape).astype(np.float32)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def place_of(mask: np.ndarray) -> tuple[str, float, float]:
    """(3x3 cell name of the mask's centroid, row, col in [0, 1]): "upper-left" ... "centre" ... "lower-right"."""
    rows, cols = np.nonzero(mask)
    r, c = rows.mean() / mask.shape[0], cols.mean() / mask.shape[1]
    vert = "upper" if r < 1 / 3 else "lower" if r > 2 / 3 else "middle"
    horiz = "left" if c < 1 / 3 else "right" if c > 2 / 3 else "centre"
    name = {("middle", "centre"): "centre"}.get((vert, horiz), f"{vert}-{horiz}")
    return name, round(float(r), 3), round(float(c), 3)
