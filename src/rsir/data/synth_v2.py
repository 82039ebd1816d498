"""Semi-synthetic change-caption set, version 2 (the default of ``rsir itsr synth``): built to be hard to
shortcut. Real scenes (e.g. UC Merced), synthetic changes, template captions; LEVIR-CC layout.

- Near-duplicate scenes (64-bit difference hash within ``dedup_bits`` bits) are dropped BEFORE the
  70/10/20 per-class split, so no test scene has a twin in training; pairs take scenes from their split.
- A changed pair: the before scene with an irregular, object-sized region (rsir.data.synth_shapes:
  building-, road- or field-like, or a real change mask transformed; 2-35% of the area, anywhere,
  feathered) taken from a scene of another class at the same place.
- Every image of both dates and both kinds of pair is then "acquired" independently: a few px of shift,
  a small rotation, blur, noise and photometric jitter from one distribution, so the dates are slightly
  misregistered and brightness tells nothing about change.
- Half the pairs (default) are unchanged, captioned from a pool of 9 content-free sentences; change
  captions name the new content and only sometimes the place, the old content or the size
  (rsir.data.synth_captions_v2); some sentence frames appear only in val/test captions.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np

from rsir.data.changecap import LEVIR_JSON, SPLITS
from rsir.data.synth import (
    SIZE,
    Scene,
    _load_scene,
    _save_png,
    _split_counts,
    duplicate_rate,
    read_scenes,
    split_plan,
    split_scenes,
)
from rsir.data.synth_captions_v2 import NO_CHANGE_POOL, P_HELD_OUT, change_captions, held_out_frames, no_change_captions
from rsir.data.synth_shapes import (
    acquire,
    acquisition_params,
    blend,
    change_mask,
    feather,
    harmonise,
    load_real_masks,
    place_of,
)

GENERATOR_VERSION = 4  # v1 of the command wrote 2; 3 had no illumination field nor harmonised pastes
HARMONISE = 0.5  # share of the way a pasted patch's colour statistics move to the scene's


def dhash(image: np.ndarray) -> np.ndarray:
    """64-bit difference hash (bool [64]) of a uint8 [H, W, 3] image: signs of horizontal grey gradients
    of a 9x8 thumbnail; near-duplicates differ in a few bits."""
    from PIL import Image

    grey = np.asarray(Image.fromarray(image).convert("L").resize((9, 8), Image.Resampling.BILINEAR), np.float32)
    return (grey[:, 1:] > grey[:, :-1]).ravel()


def near_duplicates(hashes: np.ndarray, max_bits: int) -> np.ndarray:
    """bool [N]: True for every item within ``max_bits`` Hamming distance of an earlier KEPT item."""
    b = hashes.astype(np.float32)
    dist = b @ (1 - b).T + (1 - b) @ b.T  # Hamming distances [N, N]
    drop = np.zeros(len(b), bool)
    for i in range(len(b)):
        earlier = ~drop[:i]
        drop[i] = bool((dist[i, :i][earlier] <= max_bits).any())
    return drop


def _dedup(scenes: list[Scene], cache: dict[str, np.ndarray], max_bits: int) -> tuple[list[Scene], list[dict]]:
    if max_bits < 0 or len(scenes) < 2:
        return scenes, []
    scenes = sorted(scenes, key=lambda s: s.id)
    drop = near_duplicates(np.stack([dhash(cache[s.id]) for s in scenes]), max_bits)
    removed = [{"scene": s.id, "label": s.label} for s, d in zip(scenes, drop, strict=True) if d]
    return [s for s, d in zip(scenes, drop, strict=True) if not d], removed


def make_synthetic_v2(
    archive: str | Path,
    out: str | Path,
    pairs: int = 2500,
    seed: int = 0,
    no_change_fraction: float = 0.5,
    captions_per_pair: int = 5,
    masks: str | Path | None = None,
    dedup_bits: int = 4,
    progress: bool = False,
    siblings: float = 0.0,
    workers: int = 1,
) -> dict:
    """Write the v2 set to ``out`` (LEVIR-CC layout) and return its manifest.

    ``siblings``: share of the TRAIN split's changed pairs that come in groups of 2-3 with the same before
    scene and different new content (hard negatives for ``--sibling-batches``); val/test are unaffected in
    kind. 0 (the default) draws exactly as before.

    ``masks``: a folder of real binary change masks (``**/label/*.png``) to draw shapes from, besides the
    procedural ones. ``dedup_bits``: near-duplicate threshold of the scene hash (-1 keeps every scene).
    ``workers`` > 1: render (acquire + PNG) on that many threads; the files are the same (every random draw is
    made in order on this thread first).
    """
    from tqdm.auto import tqdm

    if not 0.0 <= siblings < 1:
        raise ValueError("siblings must be in [0, 1)")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if not 0.0 <= no_change_fraction < 1:
        raise ValueError("no_change_fraction must be in [0, 1)")
    if captions_per_pair > len(NO_CHANGE_POOL):
        raise ValueError(f"captions_per_pair must be <= {len(NO_CHANGE_POOL)} (the no-change pool)")
    out = Path(out)
    real = load_real_masks(masks, SIZE) if masks else None
    cache: dict[str, np.ndarray] = {}
    skipped: list[dict] = []
    scenes = [s for s in read_scenes(Path(archive)) if _load_scene(s, cache, skipped)]
    scenes, removed = _dedup(scenes, cache, dedup_bits)
    splits = split_scenes(scenes, seed)
    rng = random.Random(seed + 1)
    entries: list[dict] = []
    all_caps: list[list[str]] = []
    counts = _split_counts(pairs)
    bar = tqdm(total=pairs, desc="synth v2 pairs", disable=not progress, unit="pair")
    render = _Renderer(workers)
    for split in SPLITS:
        group = splits[split]
        order, flags = split_plan(out, split, group, counts[split], no_change_fraction, rng)
        held_out = P_HELD_OUT if split != "train" else 0.0
        befores = sibling_plan(order, flags, siblings if split == "train" else 0.0, rng)
        used: dict[int, set[str]] = {}  # sibling group -> new-content classes already pasted
        for i, changed in enumerate(flags):
            before_scene, sib = befores[i]
            name = f"{split}_{i:06d}.png"
            avoid = used.setdefault(sib, set()) if sib is not None else set()
            views, record, caps = _one_pair(
                rng, cache, group, before_scene, changed, captions_per_pair, held_out, real, avoid
            )
            if sib is not None:
                avoid.add(record["donor_class"])
                record["sibling_group"] = sib
            for date, view in zip("AB", views, strict=True):
                render(out / "images" / split / date / name, *view)
            entries.append(_entry(split, name, changed, len(entries), sum(map(len, all_caps)), caps, record))
            all_caps.append(caps)
            bar.update()
    render.close()
    bar.close()
    (out / LEVIR_JSON).write_text(json.dumps({"dataset": "rsir-synth-change-v2", "images": entries}))
    manifest = _manifest(archive, splits, entries, all_caps, seed, no_change_fraction, captions_per_pair)
    manifest |= {"skipped_scenes": skipped, "near_duplicates_removed": removed, "dedup_bits": dedup_bits}
    manifest["siblings"] = _sibling_summary(entries, siblings)
    manifest["real_masks"] = {"folder": str(Path(masks).resolve()), "count": len(real)} if real and masks else None
    (out / "synth_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def sibling_plan(
    order: list[Scene], flags: list[bool], share: float, rng: random.Random
) -> list[tuple[Scene, int | None]]:
    """(before scene, sibling group or None) per pair. Without siblings, pair i takes ``order[i % len]`` and
    no random draw is made (the generator-4 stream). Otherwise about ``share`` of the changed pairs come in
    groups of 2-3 sharing a before scene (unchanged pairs and the rest take the next scene in order)."""
    if share <= 0:
        return [(order[i % len(order)], None) for i in range(len(flags))]
    start = share / (2.5 - 1.5 * share)  # P(a new changed pair opens a group): groups average 2.5 pairs
    plan: list[tuple[Scene, int | None]] = []
    cursor, groups, open_scene, left = 0, 0, order[0], 0
    for changed in flags:
        if changed and left > 0:  # left > 0 only after a group opened, so open_scene is that group's
            plan.append((open_scene, groups - 1))
            left -= 1
            continue
        scene = order[cursor % len(order)]
        cursor += 1
        if changed and rng.random() < start:
            open_scene, left, groups = scene, rng.choice((2, 3)) - 1, groups + 1
            plan.append((scene, groups - 1))
        else:
            plan.append((scene, None))
    return plan


def _one_pair(rng, cache, group, before_scene, changed, n_caps, held_out, real, avoid=frozenset()):
    content = cache[before_scene.id]
    record: dict = {"before_scene": before_scene.id, "before_class": before_scene.label}
    if changed:
        others = [s for s in group if s.label != before_scene.label]
        fresh = [s for s in others if s.label not in avoid]  # a sibling pastes new content of another class
        donor = rng.choice(fresh or others)  # (too few classes for a third one: a class may repeat)
        mask, shape = change_mask(rng, SIZE, real)
        sigma = rng.uniform(1.0, 3.0)
        content = blend(content, harmonise(cache[donor.id], content, HARMONISE), feather(mask, sigma))
        area = float(mask.mean())
        place, row, col = place_of(mask)
        caps, says = change_captions(rng, before_scene.label, donor.label, place, area, n_caps, held_out)
        record |= {
            "donor_scene": donor.id,
            "donor_class": donor.label,
            "shape": shape,
            "area": round(area, 4),
            "place": place,
            "centroid": [row, col],
            "feather_sigma": round(sigma, 2),
            "captions_say": says,
        }
    else:
        caps = no_change_captions(rng, n_caps)
    dates = []
    for key in ("before_acquisition", "after_acquisition"):
        params = acquisition_params(rng)
        record[key] = params
        dates.append(params)
    seeds = rng.getrandbits(32), rng.getrandbits(32)  # before's, then after's (the generator-4 order)
    return [(cache[before_scene.id], dates[0], seeds[0]), (content, dates[1], seeds[1])], record, caps


def _render_one(path: Path, image: np.ndarray, params: dict, seed: int) -> None:
    _save_png(path, acquire(image, params, seed))


class _Renderer:
    """Acquires and writes each date's image, inline or on ``workers`` threads: ndimage, numpy and Pillow's PNG
    encoder release the GIL, and what is rendered depends only on the arguments (drawn in order by the
    caller), so the files are the same either way. At most 4 per worker wait, to bound memory."""

    def __init__(self, workers: int) -> None:
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="synth") if workers > 1 else None
        self.pending: deque = deque()
        self.limit = 4 * workers

    def __call__(self, path: Path, image: np.ndarray, params: dict, seed: int) -> None:
        if self.pool is None:
            _render_one(path, image, params, seed)
            return
        self.pending.append(self.pool.submit(_render_one, path, image, params, seed))
        while len(self.pending) > self.limit:
            self.pending.popleft().result()  # re-raises a worker's error here

    def close(self) -> None:
        while self.pending:
            self.pending.popleft().result()
        if self.pool is not None:
            self.pool.shutdown()


def _sibling_summary(entries: list[dict], share: float) -> dict:
    groups = Counter(e["synth"]["sibling_group"] for e in entries if "sibling_group" in e["synth"])
    return {"share": share, "groups": sum(n > 1 for n in groups.values()), "pairs": sum(groups.values())}


def _entry(split: str, name: str, changed: bool, img_id: int, first_sent: int, caps: list[str], record: dict):
    sentences = [
        {"raw": c, "tokens": c.rstrip(".").split(), "imgid": img_id, "sentid": first_sent + k}
        for k, c in enumerate(caps)
    ]
    return {
        "filepath": split,
        "filename": name,
        "split": split,
        "changeflag": int(changed),
        "imgid": img_id,
        "sentids": [s["sentid"] for s in sentences],
        "sentences": sentences,
        "synth": record,
    }


def _manifest(archive, splits, entries, all_caps, seed, no_change_fraction, captions_per_pair) -> dict:
    by_split = {s: [i for i, e in enumerate(entries) if e["split"] == s] for s in SPLITS}
    changed = [e["synth"] for e in entries if e["changeflag"]]
    says = [s for r in changed for s in r["captions_say"]]
    share = (lambda key: round(sum(s[key] for s in says) / len(says), 4)) if says else (lambda key: None)
    return {
        "kind": "rsir-synth-change-captions",
        "synth_version": 2,
        "semi_synthetic": True,
        "note": "real scenes, synthetic irregular changes, per-date misregistration and jitter, template captions",
        "generator_version": GENERATOR_VERSION,
        "source_archive": str(Path(archive).resolve()),
        "seed": seed,
        "no_change_fraction": no_change_fraction,
        "captions_per_pair": captions_per_pair,
        "scenes": {s: len(v) for s, v in splits.items()},
        "pairs": {s: len(v) for s, v in by_split.items()},
        "changed": {s: sum(entries[i]["changeflag"] for i in v) for s, v in by_split.items()},
        "median_change_area": round(float(np.median([r["area"] for r in changed])), 4) if changed else None,
        "shapes_used": dict(Counter(r["shape"] for r in changed)),
        "places_used": dict(Counter(r["place"] for r in changed)),
        "change_captions_naming": {k: share(k) for k in ("place", "old", "size", "held_out")},
        "no_change_pool": list(NO_CHANGE_POOL),
        "held_out_frames": list(held_out_frames()),
        "duplicate_rate": round(duplicate_rate(all_caps), 4),
        "duplicate_rate_by_split": {s: round(duplicate_rate([all_caps[i] for i in v]), 4) for s, v in by_split.items()},
        "distinct_captions": len({c.lower() for caps in all_caps for c in caps}),
    }
