"""The v2 semi-synthetic change-caption generator (the default): it must stay hard to shortcut.

Run on a small subset of real UC Merced scenes (and the real LEVIR-CD / DSIFN change masks when present).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shared_data import shared_data_dir, shared_or_skip

from rsir.data.changecap import open_change_captions
from rsir.data.synth import make_synthetic
from rsir.data.synth_captions_v2 import NO_CHANGE_POOL, PLACE_WORDS, held_out_frames
from rsir.data.synth_shapes import (
    MAX_AREA,
    MIN_AREA,
    acquire,
    acquisition_params,
    change_mask,
    harmonise,
    illumination_field,
    load_real_masks,
    place_of,
)
from rsir.data.synth_v2 import dhash, near_duplicates, sibling_plan

CLASSES = ("agricultural", "buildings", "forest", "parkinglot", "river", "denseresidential")
PER_CLASS = 12


def _ucm_subset(root: Path, classes: tuple[str, ...] = CLASSES, per_class: int = PER_CLASS) -> Path:
    ucm = shared_or_skip("ucmerced")
    for label in classes or sorted(p.name for p in ucm.iterdir() if p.is_dir()):
        (root / label).mkdir(parents=True)
        for f in sorted((ucm / label).iterdir())[:per_class]:
            shutil.copyfile(f, root / label / f.name)  # not a symlink: archives skip links leading outside
    return root


def _masks() -> Path | None:
    folder = shared_data_dir() / "change-samples"
    return folder if folder.is_dir() else None


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("synth2")
    scenes = _ucm_subset(tmp / "scenes")
    return tmp / "out", make_synthetic(scenes, tmp / "out", pairs=100, seed=5, masks=_masks())


def _entries(out: Path) -> list[dict]:
    return json.loads((out / "LevirCCcaptions.json").read_text())["images"]


def _pixels(out: Path, e: dict, date: str) -> np.ndarray:
    return np.asarray(Image.open(out / "images" / e["split"] / date / e["filename"]), np.float32) / 255


def _colour_stats(image: np.ndarray) -> np.ndarray:
    flat = image.reshape(-1, 3)
    return np.concatenate([flat.mean(0), flat.std(0), np.percentile(flat, [10, 50, 90], axis=0).ravel()])


def colour_stats_accuracy(out: Path) -> float:
    """5-fold balanced accuracy of a logistic regression telling changed from unchanged pairs by per-image
    colour statistics of both dates (per channel: mean, std, 10/50/90th percentiles), their absolute
    differences and the absolute log-ratios of the channel means."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = [], []
    for e in _entries(out):
        a, b = (_pixels(out, e, d) for d in "AB")
        sa, sb = _colour_stats(a), _colour_stats(b)
        x.append(np.concatenate([sa, sb, np.abs(sb - sa), np.abs(np.log((sb[:3] + 1e-3) / (sa[:3] + 1e-3)))]))
        y.append(e["changeflag"])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(cross_val_score(clf, np.array(x), np.array(y), cv=5, scoring="balanced_accuracy").mean())


def _names_place(caption: str) -> bool:
    text = caption.lower()
    return any(p in text for ps in PLACE_WORDS.values() for p in ps)


def test_v2_must_stay_hard(v2):
    _assert_hard(*v2)


def _assert_hard(out: Path, manifest: dict) -> None:
    entries = _entries(out)
    assert manifest["synth_version"] == 2
    # >= 50% unchanged, in every split
    for split in ("train", "val", "test"):
        assert manifest["changed"][split] <= manifest["pairs"][split] / 2
    changed = [e for e in entries if e["changeflag"]]
    # object-sized changes: 2-35% of the area, median <= 15%
    areas = np.array([e["synth"]["area"] for e in changed])
    assert areas.min() >= MIN_AREA and areas.max() <= MAX_AREA and np.median(areas) <= 0.15
    # the place is named in <= 70% of change captions (read from the text, not from the record)
    change_caps = [s["raw"] for e in changed for s in e["sentences"]]
    assert 0.2 <= np.mean([_names_place(c) for c in change_caps]) <= 0.7
    # unchanged pairs: a pool of <= 10 content-free sentences
    quiet = {s["raw"] for e in entries if not e["changeflag"] for s in e["sentences"]}
    assert quiet <= set(NO_CHANGE_POOL) and len(NO_CHANGE_POOL) <= 10


@pytest.mark.slow
def test_colour_statistics_do_not_tell_changed_from_unchanged(tmp_path: Path):
    # All 21 classes (the class mix of the benchmark set; on the full 2,500-pair set the probe gets 0.55).
    scenes = _ucm_subset(tmp_path / "scenes", classes=(), per_class=20)
    make_synthetic(scenes, tmp_path / "v2", pairs=400, seed=7, masks=_masks())
    assert colour_stats_accuracy(tmp_path / "v2") <= 0.60
    # v1 jittered unchanged pairs harder than changed ones: the same probe sees that (the test has teeth).
    make_synthetic(scenes, tmp_path / "v1", pairs=400, seed=7, no_change_fraction=0.5, version=1)
    assert colour_stats_accuracy(tmp_path / "v1") > 0.62


S2_SCENES = Path(os.environ.get("RSIR_S2_SCENES", Path.home() / ".cache" / "rsir" / "s2-scenes"))


@pytest.mark.slow
def test_colour_statistics_do_not_tell_changed_from_unchanged_on_uniform_sentinel2_tiles(tmp_path: Path):
    """Nearly uniform 320 m Sentinel-2 tiles: a pasted patch of another class changes a tile's colour spread
    beyond any global jitter (probe 0.66-0.69 without the illumination field); the smooth per-date
    illumination field makes both dates' spreads vary, so the probe falls to chance level."""
    if not S2_SCENES.is_dir():
        pytest.skip(f"no Sentinel-2 scene archive at {S2_SCENES}: benchmarks/s2_scene_archive.py --out {S2_SCENES}")
    make_synthetic(S2_SCENES, tmp_path / "v2", pairs=600, seed=7, masks=_masks())
    assert colour_stats_accuracy(tmp_path / "v2") <= 0.60


def test_illumination_field_is_smooth_seeded_and_of_the_given_strength():
    field = illumination_field((256, 256), 0.2, 100.0, seed=3)
    assert field.shape == (256, 256, 3) and field.dtype == np.float32
    log_gain = np.log(field)
    assert abs(float(log_gain.mean())) < 0.02 and 0.17 < float(log_gain.std()) < 0.23
    assert np.abs(np.diff(log_gain, axis=0)).max() < 0.05  # smooth: no pixel-scale structure
    channels = log_gain.reshape(-1, 3).T  # mostly shared, slightly tinted
    assert 0.8 < np.corrcoef(channels)[0, 1] < 0.999
    assert np.array_equal(field, illumination_field((256, 256), 0.2, 100.0, seed=3))
    assert not np.allclose(field, illumination_field((256, 256), 0.2, 100.0, seed=4))
    # acquire applies it: the same image and params, with and without the field, differ by the gain
    rng = random.Random(0)
    params = acquisition_params(rng) | {"noise_std": 0.0, "blur_sigma": 0.0, "hue_rad": 0.0, "saturation": 1.0}
    grey = np.full((256, 256, 3), 100, np.uint8)
    lit, flat = acquire(grey, params, seed=9), acquire(grey, params | {"illumination": 0.0}, seed=9)
    assert flat.std() < 1.0 < lit.std()


def test_captions_vary_and_held_out_frames_stay_out_of_training(v2):
    out, manifest = v2
    entries = _entries(out)
    changed = [e for e in entries if e["changeflag"]]
    says = [s for e in changed for s in e["synth"]["captions_say"]]
    assert 0.2 < np.mean([s["old"] for s in says]) < 0.7 and 0.15 < np.mean([s["size"] for s in says]) < 0.6
    bare = [s for s in says if not (s["place"] or s["old"] or s["size"])]
    assert bare  # some captions say nothing but the new content
    patterns = [re.escape(f.split("{")[0].strip()) for f in held_out_frames() if not f.startswith("{")]
    patterns += [re.escape(f.split("}", 1)[1].split("{")[0].strip()) for f in held_out_frames() if f.startswith("{")]
    held = re.compile("|".join(p for p in patterns if p), re.IGNORECASE)
    train_caps = [s["raw"] for e in changed if e["split"] == "train" for s in e["sentences"]]
    eval_caps = [s["raw"] for e in changed if e["split"] != "train" for s in e["sentences"]]
    assert not any(held.search(c) for c in train_caps)
    assert any(held.search(c) for c in eval_caps)
    for e in changed:  # a named place is where the change is
        for s in e["sentences"]:
            hits = [(len(w), p) for p, ws in PLACE_WORDS.items() for w in ws if w in s["raw"].lower()]
            if hits:  # the longest phrase found ("at the bottom right" over "at the bottom")
                assert max(hits)[1] == e["synth"]["place"], (s["raw"], e["synth"]["place"])
    archive = open_change_captions(out)
    assert len(archive) == 100 and all(len(p.captions) == 5 for p in archive.pairs)


def test_changes_are_local_and_dates_misregistered(v2):
    out, _ = v2
    entries = _entries(out)
    e = next(e for e in entries if e["changeflag"] and e["synth"]["area"] < 0.15)
    a, b = _pixels(out, e, "A"), _pixels(out, e, "B")
    assert a.shape == b.shape == (256, 256, 3)
    record = e["synth"]
    shift = np.subtract(record["after_acquisition"]["shift_px"], record["before_acquisition"]["shift_px"])
    assert record["before_acquisition"] != record["after_acquisition"]  # each date its own acquisition
    assert np.abs(shift).max() <= 6
    q = next(e for e in entries if not e["changeflag"])
    qa, qb = _pixels(out, q, "A").mean(-1), _pixels(out, q, "B").mean(-1)
    assert not np.array_equal(qa, qb)  # unchanged pairs are not pixel-identical either
    # but show the same scene, once each date's smooth illumination field is divided out
    assert np.corrcoef(_flat_fielded(qa).ravel(), _flat_fielded(qb).ravel())[0, 1] > 0.5


def _flat_fielded(grey: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    log = np.log(grey + 1 / 255)
    return log - ndimage.gaussian_filter(log, 16)


def test_same_seed_same_output(tmp_path: Path):
    scenes = _ucm_subset(tmp_path / "scenes")
    a = make_synthetic(scenes, tmp_path / "a", pairs=10, seed=1)
    b = make_synthetic(scenes, tmp_path / "b", pairs=10, seed=1)
    assert json.loads((tmp_path / "a" / "LevirCCcaptions.json").read_text()) == json.loads(
        (tmp_path / "b" / "LevirCCcaptions.json").read_text()
    )
    assert a["duplicate_rate"] == b["duplicate_rate"]
    name = "train_000003.png"
    pa, pb = (np.asarray(Image.open(tmp_path / x / "images" / "train" / "B" / name)) for x in "ab")
    assert np.array_equal(pa, pb)


def test_near_duplicate_scenes_are_removed_before_splitting(tmp_path: Path):
    scenes = _ucm_subset(tmp_path / "scenes")
    src = scenes / "forest" / sorted(p.name for p in (scenes / "forest").iterdir())[0]
    img = np.asarray(Image.open(src)).astype(np.int16)
    noisy = np.clip(img + np.random.default_rng(0).integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(scenes / "forest" / "zz_twin.png")  # a re-encoded near copy
    manifest = make_synthetic(scenes, tmp_path / "out", pairs=30, seed=0)
    removed = {r["scene"] for r in manifest["near_duplicates_removed"]}
    assert "forest/zz_twin" in removed
    used = {
        e["synth"][k] for e in _entries(tmp_path / "out") for k in ("before_scene", "donor_scene") if k in e["synth"]
    }
    assert not used & removed


def test_near_duplicates_match_a_naive_loop():
    rng = np.random.default_rng(0)
    hashes = rng.random((40, 64)) < 0.5
    hashes[7] = hashes[3]
    hashes[20] = hashes[3] ^ (np.arange(64) < 3)  # 3 bits off
    drop = near_duplicates(hashes, 4)
    kept: list[int] = []
    for i in range(40):  # naive: keep i unless within 4 bits of an earlier kept hash
        if all(int((hashes[i] != hashes[j]).sum()) > 4 for j in kept):
            kept.append(i)
    assert np.flatnonzero(~drop).tolist() == kept
    assert drop[7] and drop[20]
    assert dhash(np.zeros((16, 16, 3), np.uint8)).shape == (64,)


@pytest.mark.parametrize("seed", range(6))
def test_change_masks_are_object_sized_and_anywhere(seed: int):
    rng = random.Random(seed)
    real = load_real_masks(_masks(), 256) if _masks() else None
    kinds, places = set(), set()
    for _ in range(40):
        mask, kind = change_mask(rng, 256, real)
        assert MIN_AREA <= mask.mean() <= MAX_AREA
        kinds.add(kind)
        places.add(place_of(mask)[0])
    assert {"building", "road", "field"} <= kinds
    assert len(places) >= 5


def test_pasted_content_moves_half_way_to_the_scene_colours():
    rng = np.random.default_rng(0)
    donor = rng.normal([200, 60, 40], [30, 10, 5], (64, 64, 3))
    scene = rng.normal([80, 120, 100], [6, 8, 4], (64, 64, 3))
    out = harmonise(donor, scene, 0.5).reshape(-1, 3)
    d, s = donor.reshape(-1, 3), scene.reshape(-1, 3)
    assert np.allclose(out.mean(0), (d.mean(0) + s.mean(0)) / 2, atol=0.01)
    assert np.allclose(out.std(0), (d.std(0) + s.std(0)) / 2, rtol=1e-3)
    assert np.corrcoef(out[:, 0], d[:, 0])[0, 1] > 0.999  # the texture stays the donor's
    assert np.allclose(harmonise(donor, scene, 0.0), donor, atol=1e-3)


@pytest.fixture(scope="module")
def v2_siblings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("synth2sib")
    scenes = _ucm_subset(tmp / "scenes")
    return tmp / "out", make_synthetic(scenes, tmp / "out", pairs=100, seed=5, masks=_masks(), siblings=0.6)


def test_sibling_pairs_share_the_scene_not_the_change_and_stay_hard(v2_siblings):
    out, manifest = v2_siblings
    _assert_hard(out, manifest)  # every "v2 must stay hard" check holds with siblings too
    entries = _entries(out)
    groups: dict[int, list[dict]] = {}
    for e in entries:
        if "sibling_group" in e["synth"]:
            assert e["split"] == "train" and e["changeflag"]  # only the train split's changed pairs
            groups.setdefault(e["synth"]["sibling_group"], []).append(e["synth"])
    assert manifest["siblings"]["groups"] >= 5
    for members in groups.values():
        assert 1 <= len(members) <= 3
        assert len({m["before_scene"] for m in members}) == 1  # the same before scene ...
        assert len({m["donor_class"] for m in members}) == len(members)  # ... with different new content
    changed_train = sum(e["changeflag"] for e in entries if e["split"] == "train")
    in_groups = sum(len(m) for m in groups.values() if len(m) > 1)
    assert 0.3 <= in_groups / changed_train <= 0.9  # about the share asked for (0.6)
    # splits stay clean: no before scene of train is a scene of val or test
    scenes = {s: {e["synth"]["before_scene"] for e in entries if e["split"] == s} for s in ("train", "val", "test")}
    assert not scenes["train"] & (scenes["val"] | scenes["test"])
    # the training loader sees the before scene of each pair (the sibling batches group by it)
    train = open_change_captions(out, "train").pairs
    assert all(p.meta["scene"] for p in train)


def test_sibling_plan_without_siblings_makes_no_draw_and_cycles_the_order():
    rng = random.Random(3)
    state = rng.getstate()
    order = list("abc")
    plan = sibling_plan(order, [True, False, True, True, False], 0.0, rng)
    assert plan == [(o, None) for o in "abcab"]
    assert rng.getstate() == state  # siblings=0 draws exactly as generator 4 did


def test_sibling_plan_groups_changed_pairs_only():
    flags = [True, False] * 200
    plan = sibling_plan(list(range(1000)), flags, 0.6, random.Random(0))
    grouped = [(s, g) for (s, g), c in zip(plan, flags, strict=True) if g is not None]
    assert all(c for (_, g), c in zip(plan, flags, strict=True) if g is not None)
    by_group: dict[int, set] = {}
    for scene, g in grouped:
        by_group.setdefault(g, set()).add(scene)
    assert all(len(v) == 1 for v in by_group.values())  # one scene per group
    ungrouped = [s for (s, g) in plan if g is None]
    assert len(set(ungrouped)) == len(ungrouped)  # other pairs take fresh scenes


def _illumination_field_naive(shape: tuple[int, int], strength: float, scale_px: float, seed: int) -> np.ndarray:
    """The generator-4 code before the fast path: a cubic ndimage.zoom of each coarse field."""
    import math

    from scipy import ndimage

    h, w = shape
    rng = np.random.default_rng([seed, 1])
    cells = (max(2, math.ceil(h / scale_px) + 2), max(2, math.ceil(w / scale_px) + 2))
    coarse = rng.normal(size=(4, *cells)).astype(np.float32)
    fields = np.stack([ndimage.zoom(c, (h / (cells[0] - 1), w / (cells[1] - 1)), order=3)[:h, :w] for c in coarse])
    fields = (fields - fields.mean(axis=(1, 2), keepdims=True)) / (fields.std(axis=(1, 2), keepdims=True) + 1e-6)
    log_gain = fields[0][..., None] + 0.3 * np.moveaxis(fields[1:], 0, -1)
    return np.exp(strength * log_gain / math.sqrt(1.09)).astype(np.float32)


def test_illumination_field_is_bit_identical_to_the_naive_zoom():
    rng = random.Random(0)
    shapes = [(256, 256)] * 20 + [(64, 96), (97, 50), (300, 256)]
    for shape in shapes:
        p = acquisition_params(rng)
        args = (shape, p["illumination"], p["illumination_scale_px"], rng.getrandbits(32))
        assert np.array_equal(illumination_field(*args), _illumination_field_naive(*args)), args


def test_a_tiny_draw_is_byte_identical_to_the_naive_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fast illumination field and render threads change no byte of a draw (masks included)."""
    import rsir.data.synth_shapes as shapes

    scenes = _ucm_subset(tmp_path / "scenes", CLASSES[:3], per_class=10)
    make_synthetic(scenes, tmp_path / "fast", pairs=10, seed=2, masks=_masks())
    make_synthetic(scenes, tmp_path / "threads", pairs=10, seed=2, masks=_masks(), workers=3)
    monkeypatch.setattr(shapes, "illumination_field", _illumination_field_naive)
    make_synthetic(scenes, tmp_path / "naive", pairs=10, seed=2, masks=_masks())
    files = sorted(p.relative_to(tmp_path / "naive") for p in (tmp_path / "naive").rglob("*.*"))
    assert len(files) == 2 * 10 + 2
    for f in files:
        naive = (tmp_path / "naive" / f).read_bytes()
        assert (tmp_path / "fast" / f).read_bytes() == naive == (tmp_path / "threads" / f).read_bytes(), f
    with pytest.raises(ValueError, match="workers"):
        make_synthetic(scenes, tmp_path / "v1", pairs=10, version=1, workers=2)
    with pytest.raises(ValueError, match="workers"):
        make_synthetic(scenes, tmp_path / "none", pairs=10, workers=0)
