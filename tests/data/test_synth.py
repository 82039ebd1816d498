"""The semi-synthetic change-caption generator, version 1 (the easy grid set), on a tiny seeded scene archive."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsir.data.changecap import open_change_captions
from rsir.data.synth import duplicate_rate, make_synthetic, paste_region, photometric, region_box, split_scenes
from rsir.data.synth_captions import CLASS_WORDS, REGION_WORDS, change_captions, no_change_captions

CLASSES = ("agricultural", "forest", "storagetanks")


def write_scenes(root: Path, per_class: int = 10, seed: int = 0) -> Path:
    """One folder per class of small seeded images, each class with its own mean colour."""
    rng = np.random.default_rng(seed)
    for c, label in enumerate(CLASSES):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            base = np.array([60 + 60 * c, 200 - 50 * c, 90], np.float32)
            img = np.clip(base + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / label / f"{label}{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("synth")
    scenes = write_scenes(tmp / "scenes")
    return tmp / "out", make_synthetic(scenes, tmp / "out", pairs=60, seed=3, version=1)


def _entries(out: Path) -> list[dict]:
    return json.loads((out / "LevirCCcaptions.json").read_text())["images"]


def test_layout_is_levir_cc_and_readable(synth):
    out, manifest = synth
    archive = open_change_captions(out)
    assert archive.kind == "levir-cc"
    assert manifest["pairs"] == {"train": 42, "val": 6, "test": 12}
    assert len(archive) == 60 and not archive.skipped
    assert all(len(p.captions) == 5 and len(set(p.captions)) == 5 for p in archive.pairs)
    sample = archive[0]
    assert tuple(sample["image"].shape) == (2, 3, 256, 256)
    for e in _entries(out):
        assert (out / "images" / e["split"] / "A" / e["filename"]).is_file()
        assert (out / "images" / e["split"] / "B" / e["filename"]).is_file()
    assert manifest["semi_synthetic"] is True
    stored = json.loads((out / "synth_manifest.json").read_text())
    assert stored["duplicate_rate"] == manifest["duplicate_rate"] < 0.1


def test_scenes_are_disjoint_across_splits(synth):
    out, _ = synth
    used: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for e in _entries(out):
        used[e["split"]].add(e["synth"]["before_scene"])
        if "donor_scene" in e["synth"]:
            used[e["split"]].add(e["synth"]["donor_scene"])
    assert not used["train"] & used["test"]
    assert not used["train"] & used["val"]
    assert not used["val"] & used["test"]


def test_change_ratio_and_region_words(synth):
    out, manifest = synth
    entries = _entries(out)
    no_change = [e for e in entries if not e["changeflag"]]
    assert len(no_change) / len(entries) >= 0.2
    for split in ("train", "val", "test"):
        assert manifest["changed"][split] < manifest["pairs"][split]  # every split has no-change pairs
    for e in entries:
        caps = [s["raw"].lower() for s in e["sentences"]]
        if e["changeflag"]:
            words = REGION_WORDS[e["synth"]["region"]]
            assert all(any(w in c for w in words) for c in caps), caps
            assert e["synth"]["donor_class"] != e["synth"]["before_class"]
        else:
            assert "region" not in e["synth"]
            assert not any(w in c for c in caps for ws in REGION_WORDS.values() for w in ws if w != "the middle")


def test_pixels_changed_only_inside_the_region(synth):
    out, _ = synth
    e = next(e for e in _entries(out) if e["changeflag"] and e["synth"]["region"] != "centre")
    folder = out / "images" / e["split"]
    a = np.asarray(Image.open(folder / "A" / e["filename"]), np.float32)
    b = np.asarray(Image.open(folder / "B" / e["filename"]), np.float32)
    rows, cols = region_box(e["synth"]["region"])
    inside = np.zeros(a.shape[:2], bool)
    inside[rows, cols] = True
    diff = np.abs(a - b).mean(-1)
    # Outside: only the mild photometric jitter; inside: another class's colours.
    assert diff[inside].mean() > 2 * diff[~inside].mean()


def test_same_seed_same_output_other_seed_differs(tmp_path: Path):
    scenes = write_scenes(tmp_path / "scenes", per_class=6)
    make_synthetic(scenes, tmp_path / "a", pairs=20, seed=1, version=1)
    make_synthetic(scenes, tmp_path / "b", pairs=20, seed=1, version=1)
    make_synthetic(scenes, tmp_path / "c", pairs=20, seed=2, version=1)
    ja, jb, jc = (json.loads((tmp_path / x / "LevirCCcaptions.json").read_text()) for x in "abc")
    assert ja == jb and ja != jc
    name = ja["images"][0]["filename"]
    pa = np.asarray(Image.open(tmp_path / "a" / "images" / "train" / "B" / name))
    pb = np.asarray(Image.open(tmp_path / "b" / "images" / "train" / "B" / name))
    assert np.array_equal(pa, pb)


def test_split_is_per_class_70_10_20():
    from rsir.data.synth import Scene

    scenes = [Scene(f"{c}/{i}", Path(f"{c}{i}.png"), c) for c in "xyz" for i in range(10)]
    parts = split_scenes(scenes, seed=0)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [21, 3, 6]
    assert {s.label for s in parts["test"]} == {"x", "y", "z"}


def test_captions_name_what_where_and_stay_distinct():
    rng = random.Random(0)
    caps = change_captions(rng, "agricultural", "buildings", "upper-left", 5)
    assert len(set(caps)) == 5
    new_words = CLASS_WORDS["buildings"][0]
    assert all(any(w.split()[-1] in c.lower() for w in new_words) for c in caps)
    assert all(any(w in c.lower() for w in REGION_WORDS["upper-left"]) for c in caps)
    quiet = no_change_captions(rng, "forest", "darker", 5, "high")
    assert len(set(quiet)) == 5 and all("dark" in c or "dim" in c or "weaker" in c for c in quiet)


def test_duplicate_rate_and_region_paste():
    assert duplicate_rate([["a", "b"], ["A", "c"], ["d"]]) == pytest.approx(2 / 5)
    before = np.zeros((8, 8, 3), np.uint8)
    donor = np.full((8, 8, 3), 200, np.uint8)
    out = paste_region(before, donor, "lower-right", feather=0)
    assert out[4:, 4:].min() == 200 and out[:4].max() == 0 and out[:, :4].max() == 0
    img, kind, params = photometric(random.Random(0), donor, 0.3)
    assert img.shape == donor.shape and kind in {"brighter", "darker", "more-contrast", "less-contrast", "hue"}
    assert params["degree"] in {"low", "high"}
