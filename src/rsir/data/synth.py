"""Semi-synthetic change-caption set from a scene archive, written in the LEVIR-CC layout.

``make_synthetic`` writes version 2 by default (rsir.data.synth_v2: built to be hard to shortcut); this
module holds the shared parts and version 1, the EASY set kept for comparison (``version=1``):

SEMI-SYNTHETIC: the pixels are real scenes (e.g. UC Merced), the changes are not. An "after" image is
the "before" scene with one region (quadrant, half or centre; 9 regions) replaced by the same region of
a scene of another class, plus a mild photometric jitter; a share of pairs (default 25%) only gets a
photometric change (brightness / contrast / hue). Each pair gets 5 varied captions that name what
appeared, what disappeared and where (rsir.data.synth_captions).

Scenes are split train/val/test (70/10/20 per class) BEFORE pairing, and each pair takes its before and
donor scenes from its own split, so no test scene is ever seen in training. Everything is seeded.
Output: ``LevirCCcaptions.json`` (+ a ``synth`` record per pair: scenes, region, jitter),
``images/{train,val,test}/{A,B}/<split>_NNNNNN.png`` and ``synth_manifest.json`` (counts, duplicate rate).
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsir.data.changecap import LEVIR_JSON, SPLITS, load_pair_image
from rsir.data.items import ImageError
from rsir.data.synth_captions import REGION_WORDS, change_captions, no_change_captions

SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
SIZE = 256
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class Scene:
    id: str
    path: Path
    label: str


def region_box(region: str, size: int = SIZE) -> tuple[slice, slice]:
    """(rows, cols) of a named region in a ``size`` x ``size`` image."""
    h = size // 2
    q = size // 4
    boxes = {
        "upper-left": (slice(0, h), slice(0, h)),
        "upper-right": (slice(0, h), slice(h, size)),
        "lower-left": (slice(h, size), slice(0, h)),
        "lower-right": (slice(h, size), slice(h, size)),
        "top": (slice(0, h), slice(0, size)),
        "bottom": (slice(h, size), slice(0, size)),
        "left": (slice(0, size), slice(0, h)),
        "right": (slice(0, size), slice(h, size)),
        "centre": (slice(q, size - q), slice(q, size - q)),
    }
    return boxes[region]


def read_scenes(root: Path) -> list[Scene]:
    """Single-label scenes of a class-folder archive."""
    from rsir.data.archives import open_archive

    items = open_archive(root).items
    scenes = [Scene(it.id, it.path, it.labels[0]) for it in items if len(it.labels) == 1]
    if not scenes:
        raise ValueError(f"{root}: no labelled single-label scenes found (expected one folder per class)")
    return scenes


def split_scenes(scenes: list[Scene], seed: int) -> dict[str, list[Scene]]:
    """Per class, shuffle then cut 70/10/20, so every split has every class and no scene twice."""
    rng = random.Random(seed)
    by_class: dict[str, list[Scene]] = defaultdict(list)
    for s in scenes:
        by_class[s.label].append(s)
    out: dict[str, list[Scene]] = {s: [] for s in SPLITS}
    for label in sorted(by_class):
        group = sorted(by_class[label], key=lambda s: s.id)
        rng.shuffle(group)
        n_train = round(len(group) * SPLIT_FRACTIONS["train"])
        n_val = round(len(group) * SPLIT_FRACTIONS["val"])
        out["train"] += group[:n_train]
        out["val"] += group[n_train : n_train + n_val]
        out["test"] += group[n_train + n_val :]
    return out


def to_uint8_square(image: np.ndarray) -> np.ndarray:
    """float [C, H, W] in [0, 1] -> uint8 [SIZE, SIZE, 3] (resized when a scene is a few px off)."""
    from PIL import Image

    rgb = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    arr = (np.clip(rgb.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.shape[:2] != (SIZE, SIZE):
        arr = np.asarray(Image.fromarray(arr).resize((SIZE, SIZE), Image.BILINEAR))
    return arr


def photometric(rng: random.Random, image: np.ndarray, strength: float) -> tuple[np.ndarray, str, dict]:
    """Brightness, contrast and hue jitter; returns (image, name of the dominant change, parameters)."""
    x = image.astype(np.float32) / 255.0
    kind = rng.choice(["brighter", "darker", "more-contrast", "less-contrast", "hue"])
    sign = {"brighter": 1, "darker": -1, "more-contrast": 1, "less-contrast": -1, "hue": 1}[kind]
    main = strength * rng.uniform(0.6, 1.0)
    brightness = 1 + (sign * main if kind in ("brighter", "darker") else rng.uniform(-0.05, 0.05))
    contrast = 1 + (sign * main if "contrast" in kind else rng.uniform(-0.05, 0.05))
    hue = rng.choice([-1, 1]) * (main * 1.2 if kind == "hue" else rng.uniform(0, 0.05))
    mean = x.mean()
    x = (x - mean) * contrast + mean
    x = x * brightness
    x = rotate_hue(x, hue)
    params = {
        "brightness": round(brightness, 3),
        "contrast": round(contrast, 3),
        "hue_rad": round(hue, 3),
        "degree": "high" if main > 0.8 * strength else "low",
    }
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8), kind, params


def rotate_hue(x: np.ndarray, angle: float) -> np.ndarray:
    """Hue rotation by ``angle`` radians in YIQ space (a linear map, so cheap)."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float32)
    m = np.linalg.inv(to_yiq) @ rot @ to_yiq
    return x @ m.T.astype(np.float32)


def paste_region(before: np.ndarray, donor: np.ndarray, region: str, feather: int = 4) -> np.ndarray:
    """``before`` with ``region`` taken from ``donor`` (same place), edges softened over ``feather`` px."""
    rows, cols = region_box(region, before.shape[0])
    mask = np.zeros(before.shape[:2], np.float32)
    mask[rows, cols] = 1.0
    if feather:
        from PIL import Image, ImageFilter

        blurred = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.BoxBlur(feather))
        mask = np.asarray(blurred, np.float32) / 255.0 * mask  # soften inwards only: outside stays before
    out = before * (1 - mask[..., None]) + donor * mask[..., None]
    return (out + 0.5).astype(np.uint8)


def split_plan(
    out: Path, split: str, scenes: list[Scene], n_pairs: int, no_change_fraction: float, rng: random.Random
) -> tuple[list[Scene], list[bool]]:
    """One split's before-scene order and changed/unchanged flags (shuffled), its image folders made; every
    version of the generator draws them alike."""
    if len(scenes) < 2 or len({s.label for s in scenes}) < 2:
        raise ValueError(f"split {split!r} needs scenes of at least 2 classes, got {len(scenes)} scenes")
    for folder in ("A", "B"):
        (out / "images" / split / folder).mkdir(parents=True, exist_ok=True)
    order = rng.sample(scenes, k=len(scenes))
    n_nochange = int(round(n_pairs * no_change_fraction))
    flags = [False] * n_nochange + [True] * (n_pairs - n_nochange)
    rng.shuffle(flags)
    return order, flags


def _split_counts(pairs: int) -> dict[str, int]:
    counts = {s: int(round(pairs * SPLIT_FRACTIONS[s])) for s in ("val", "test")}
    counts["train"] = pairs - counts["val"] - counts["test"]
    return {s: counts[s] for s in SPLITS}


def duplicate_rate(captions_per_pair: list[list[str]]) -> float:
    """Share of captions whose exact text (case-insensitive) also captions another pair."""
    owners: dict[str, set[int]] = defaultdict(set)
    for i, caps in enumerate(captions_per_pair):
        for c in caps:
            owners[c.lower()].add(i)
    total = sum(len(caps) for caps in captions_per_pair)
    dup = sum(1 for caps in captions_per_pair for c in caps if len(owners[c.lower()]) > 1)
    return dup / total if total else 0.0


def make_synthetic(
    archive: str | Path,
    out: str | Path,
    pairs: int = 2500,
    seed: int = 0,
    no_change_fraction: float | None = None,
    captions_per_pair: int = 5,
    progress: bool = False,
    overwrite: bool = False,
    version: int = 2,
    masks: str | Path | None = None,
    siblings: float = 0.0,
    workers: int = 1,
) -> dict:
    """Write the semi-synthetic set to ``out`` (LEVIR-CC layout) and return its manifest.

    ``out`` must be new or empty; ``overwrite`` clears a previous set there first (never a folder that
    holds something else): writing over an old set would mix its images with the new captions.

    ``version`` 2 (default): rsir.data.synth_v2 (irregular changes, misregistration, one jitter
    distribution, content-free no-change captions; ``no_change_fraction`` default 0.5). ``version`` 1: the
    original easy set described above (grid regions; ``no_change_fraction`` default 0.25).
    ``siblings`` (version 2): share of the train split's changed pairs in groups sharing a before scene.
    ``workers`` (version 2): threads that render the images (the same files for any number).
    """
    if version not in (1, 2):
        raise ValueError(f"synth version must be 1 or 2, got {version}")
    if masks is not None and version == 1:
        raise ValueError("real change masks (masks=...) are a version 2 option")
    if siblings and version == 1:
        raise ValueError("sibling pairs (siblings=...) are a version 2 option")
    if workers != 1 and version == 1:
        raise ValueError("render threads (workers=...) are a version 2 option")
    _check_pairs(pairs)
    _prepare_out(Path(out), overwrite)
    if version == 2:
        from rsir.data.synth_v2 import make_synthetic_v2

        frac = 0.5 if no_change_fraction is None else no_change_fraction
        return make_synthetic_v2(
            archive, out, pairs, seed, frac, captions_per_pair, masks, progress=progress, siblings=siblings,
            workers=workers,
        )  # fmt: skip
    return _make_v1(
        archive,
        out,
        pairs,
        seed,
        0.25 if no_change_fraction is None else no_change_fraction,
        captions_per_pair,
        progress,
    )


def _make_v1(
    archive: str | Path,
    out: str | Path,
    pairs: int,
    seed: int,
    no_change_fraction: float,
    captions_per_pair: int,
    progress: bool,
) -> dict:
    from tqdm.auto import tqdm

    if not 0.2 <= no_change_fraction < 1:
        raise ValueError("no_change_fraction must be in [0.2, 1)")
    out = Path(out)  # checked and prepared by make_synthetic
    splits = split_scenes(read_scenes(Path(archive)), seed)
    rng = random.Random(seed + 1)
    cache: dict[str, np.ndarray] = {}
    skipped: list[dict] = []
    for split, scenes in splits.items():
        splits[split] = [s for s in scenes if _load_scene(s, cache, skipped)]

    def pixels(scene: Scene) -> np.ndarray:
        return cache[scene.id]

    entries, all_caps, sent_id = [], [], 0
    counts = _split_counts(pairs)
    bar = tqdm(total=pairs, desc="synth pairs", disable=not progress, unit="pair")
    for split in SPLITS:
        scenes = splits[split]
        order, flags = split_plan(out, split, scenes, counts[split], no_change_fraction, rng)
        for i, changed in enumerate(flags):
            before_scene = order[i % len(order)]
            before = pixels(before_scene)
            record: dict = {"before_scene": before_scene.id, "before_class": before_scene.label}
            if changed:
                donor_scene = rng.choice([s for s in scenes if s.label != before_scene.label])
                region = rng.choice(sorted(REGION_WORDS))
                after, _, params = photometric(rng, paste_region(before, pixels(donor_scene), region), 0.08)
                caps = change_captions(rng, before_scene.label, donor_scene.label, region, captions_per_pair)
                record |= {"donor_scene": donor_scene.id, "donor_class": donor_scene.label, "region": region}
            else:
                after, kind, params = photometric(rng, before, 0.3)
                caps = no_change_captions(rng, before_scene.label, kind, captions_per_pair, params["degree"])
                record["photometric_change"] = kind
            record["photometric"] = params
            name = f"{split}_{i:06d}.png"
            _save_png(out / "images" / split / "A" / name, before)
            _save_png(out / "images" / split / "B" / name, after)
            img_id = len(entries)
            sentences = [
                {"raw": c, "tokens": c.rstrip(".").split(), "imgid": img_id, "sentid": sent_id + k}
                for k, c in enumerate(caps)
            ]
            entries.append(
                {
                    "filepath": split,
                    "filename": name,
                    "split": split,
                    "changeflag": int(changed),
                    "imgid": img_id,
                    "sentids": [s["sentid"] for s in sentences],
                    "sentences": sentences,
                    "synth": record,
                }
            )
            sent_id += len(sentences)
            all_caps.append(caps)
            bar.update()
    bar.close()
    (out / LEVIR_JSON).write_text(json.dumps({"dataset": "rsir-synth-change", "images": entries}))
    manifest = _manifest(archive, splits, entries, all_caps, seed, no_change_fraction, captions_per_pair)
    manifest["skipped_scenes"] = skipped
    (out / "synth_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _check_pairs(pairs: int) -> None:
    """Every split (70/10/20) needs at least one pair; an empty set is refused."""
    smallest = next(p for p in range(1, 100) if min(_split_counts(p).values()) >= 1)
    if pairs < smallest:
        raise ValueError(f"--pairs {pairs} leaves a split empty: use at least {smallest} (70/10/20 train/val/test)")


def _prepare_out(out: Path, overwrite: bool) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if not overwrite:
        raise ValueError(f"{out} is not empty; choose a new folder, or pass --overwrite to replace the set in it")
    if not ((out / LEVIR_JSON).exists() or (out / "synth_manifest.json").exists()):
        raise ValueError(f"{out} holds no change-caption set; refusing to clear it: choose a new folder")
    import shutil

    shutil.rmtree(out)


def _load_scene(scene: Scene, cache: dict[str, np.ndarray], skipped: list[dict]) -> bool:
    try:
        cache[scene.id] = to_uint8_square(load_pair_image(scene.path))
    except ImageError as exc:
        skipped.append({"path": str(scene.path), "reason": str(exc)})
        return False
    return True


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path, compress_level=1)  # fast; size matters less than generation time


def _manifest(archive, splits, entries, all_caps, seed, no_change_fraction, captions_per_pair) -> dict:
    by_split = {s: [i for i, e in enumerate(entries) if e["split"] == s] for s in SPLITS}
    return {
        "kind": "rsir-synth-change-captions",
        "synth_version": 1,
        "semi_synthetic": True,
        "note": "real scenes, synthetic changes (pasted regions of other-class scenes) and template captions",
        "generator_version": GENERATOR_VERSION,
        "source_archive": str(Path(archive).resolve()),
        "seed": seed,
        "no_change_fraction": no_change_fraction,
        "captions_per_pair": captions_per_pair,
        "regions": sorted(REGION_WORDS),
        "scenes": {s: len(v) for s, v in splits.items()},
        "pairs": {s: len(v) for s, v in by_split.items()},
        "changed": {s: sum(entries[i]["changeflag"] for i in v) for s, v in by_split.items()},
        "regions_used": dict(Counter(e["synth"].get("region", "none") for e in entries)),
        "duplicate_rate": round(duplicate_rate(all_caps), 4),
        "duplicate_rate_by_split": {s: round(duplicate_rate([all_caps[i] for i in v]), 4) for s, v in by_split.items()},
        "distinct_captions": len({c.lower() for caps in all_caps for c in caps}),
    }
