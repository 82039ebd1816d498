"""LEVIR-CC and Dubai-CC readers on tiny seeded archives written in the released layouts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsir.data.changecap import (
    ChangeCaptionError,
    detect_layout,
    open_change_captions,
    says_no_change,
)

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("RSIR_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()


def _pixels(rng: np.random.Generator, n: int, size: int) -> list[np.ndarray]:
    """Real LEVIR-CD / DSIFN crops when the shared samples exist (tests only), else seeded noise."""
    files = sorted((SHARED / "change-samples").glob("*/[AB]/*.png"))
    out = []
    for i in range(n):
        if files:
            arr = np.asarray(Image.open(files[i % len(files)]).convert("RGB"))[:size, :size]
        else:
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        out.append(np.ascontiguousarray(arr))
    return out


def write_levir(root: Path, entries: list[dict], seed: int = 0, size: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    pix = _pixels(rng, 2 * len(entries), size)
    for i, e in enumerate(entries):
        for j, folder in enumerate("AB"):
            path = root / "images" / e["filepath"] / folder / e["filename"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pix[2 * i + j]).save(path)
    (root / "LevirCCcaptions.json").write_text(json.dumps({"images": entries}))
    return root


def _entry(split: str, i: int, raws: list, flag: int | None = 1) -> dict:
    e = {
        "filepath": split,
        "filename": f"{split}_{i:06d}.png",
        "split": split,
        "imgid": i,
        "sentences": [{"raw": r, "tokens": [], "imgid": i} if r is not None else {"tokens": []} for r in raws],
    }
    if flag is not None:
        e["changeflag"] = flag
    return e


@pytest.fixture()
def levir(tmp_path: Path) -> Path:
    entries = [
        _entry("train", 0, [" many houses are built along the road . ", "new buildings appear"]),
        _entry("train", 1, [" the scene is the same as before . ", "there is no difference"], flag=0),
        _entry("val", 2, ["a road appears", "", 42, None, "   "]),  # three bad captions
        _entry("test", 3, ["", 7]),  # no usable caption: pair skipped
        _entry("test", 4, ["nothing has changed", "the two scenes seem identical"], flag=None),
        _entry("test", 5, ["a pond was filled"], flag=None),
    ]
    return write_levir(tmp_path / "LEVIR-CC", entries)


def test_levir_layout_samples_and_splits(levir: Path):
    assert detect_layout(levir) == "levir-cc"
    archive = open_change_captions(levir)
    assert archive.kind == "levir-cc"
    assert archive.ids == [
        "train/train_000000",
        "train/train_000001",
        "val/val_000002",
        "test/test_000004",
        "test/test_000005",
    ]
    sample = archive[0]
    assert set(sample) == {"image", "captions", "changed", "id"}
    assert tuple(sample["image"].shape) == (2, 3, 64, 64)
    assert float(sample["image"].min()) >= 0.0 and float(sample["image"].max()) <= 1.0
    assert sample["captions"] == ["many houses are built along the road.", "new buildings appear"]
    assert sample["changed"] is True
    assert archive[1]["changed"] is False  # changeflag 0
    by_id = {p.id: p for p in archive.pairs}
    assert by_id["test/test_000004"].changed is False  # no flag: the captions say so
    assert by_id["test/test_000005"].changed is True
    assert len(open_change_captions(levir, split="test")) == 2
    assert {p.split for p in archive.split("validation").pairs} == {"val"}


def test_levir_bad_captions_are_skipped_and_reported(levir: Path):
    archive = open_change_captions(levir)
    val = archive.split("val").pairs[0]
    assert val.captions == ("a road appears",)
    reasons = [s.reason for s in archive.skipped]
    assert sum("empty" in r for r in reasons) == 3  # "", "   " and the test pair's ""
    assert any("not a string (int)" in r for r in reasons)
    assert any("not a string (NoneType)" in r for r in reasons)  # sentence without "raw"
    assert any("test_000003: no usable caption, pair skipped" in r for r in reasons)
    assert "skipped" in archive.summary()


def test_levir_missing_image_skips_the_pair(levir: Path):
    (levir / "images" / "train" / "B" / "train_000001.png").unlink()
    archive = open_change_captions(levir)
    assert "train/train_000001" not in archive.ids
    assert any("image file missing" in s.reason for s in archive.skipped)


def test_not_an_archive_and_broken_json(tmp_path: Path):
    with pytest.raises(ChangeCaptionError, match="not a change-caption archive"):
        open_change_captions(tmp_path)
    (tmp_path / "LevirCCcaptions.json").write_text("{broken")
    with pytest.raises(ChangeCaptionError, match="cannot read caption file"):
        open_change_captions(tmp_path)
    (tmp_path / "LevirCCcaptions.json").write_text(json.dumps({"nope": []}))
    with pytest.raises(ChangeCaptionError, match="'images' list"):
        open_change_captions(tmp_path)


def _write_dubai_images(root: Path, names: list[str], seed: int = 0) -> None:
    pix = _pixels(np.random.default_rng(seed), 2 * len(names), 50)
    for i, name in enumerate(names):
        for j, folder in enumerate(("500_2000", "500_2010")):
            path = root / "imgs_tiles" / "RGB" / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pix[2 * i + j]).save(path)  # .tif via Pillow


def test_dubai_layout_with_the_real_caption_files(tmp_path: Path):
    captions = SHARED / "dubai-cc-captions"
    if not captions.is_dir():
        pytest.skip(f"real Dubai-CC caption files not found at {captions} (set RSIR_SHARED_DATA)")
    root = tmp_path / "Dubai-CC"
    shutil.copytree(captions, root / "captions")
    test_json = json.loads((captions / "Test_Dubai_CC.json").read_text())
    names = [e["filename"] for e in test_json["images"][:6]]
    _write_dubai_images(root, names)
    assert detect_layout(root) == "dubai-cc"
    archive = open_change_captions(root)
    # Only the 6 tiles with images are kept; all other pairs are reported as missing images.
    assert archive.ids == [f"test/{Path(n).stem}" for n in names]
    assert sum("image file missing" in s.reason for s in archive.skipped) == 500 - 6
    sample = archive[0]
    assert tuple(sample["image"].shape) == (2, 3, 50, 50)
    assert len(sample["captions"]) == 5
    # The first test pair of Dubai-CC is a no-change pair; its third has new buildings.
    assert sample["changed"] is False
    assert archive.pairs[2].changed is True


def test_dubai_no_change_rule_on_every_real_caption_file():
    captions = SHARED / "dubai-cc-captions"
    if not captions.is_dir():
        pytest.skip(f"real Dubai-CC caption files not found at {captions}")
    all_same = mixed = 0
    for f in captions.glob("*_Dubai_CC.json"):
        for e in json.loads(f.read_text())["images"]:
            votes = [says_no_change(s["raw"]) for s in e["sentences"]]
            all_same += all(votes)
            mixed += any(votes) and not all(votes)
    assert all_same == 84 + 17 + 44  # the pairs whose five captions all say "no change"
    assert mixed == 18 + 3 + 9  # some annotators saw a change: counted as changed


@pytest.mark.parametrize(
    ("text", "no_change"),
    [
        ("Nothing has changed.", True),
        ("the scene is the same as before", True),
        ("There is no difference.", True),
        ("Everything remains the same.", True),
        ("the two scenes seem identical", True),
        ("No change was made in this area.", True),
        ("New buildings appear in the desert.", False),
        ("The road in the middle appears smaller.", False),
        ("A road was removed.", False),
    ],
)
def test_no_change_sentences(text: str, no_change: bool):
    assert says_no_change(text) is no_change


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("", None), ("  ", None), ("2", None), ("yes", None), (0.5, None), ([1], None), (None, None), ("01", None),
     ("1", True), (" 0 ", False), (1, True), (0, False), (1.0, True)],
)  # fmt: skip
def test_levir_change_flags_that_are_empty_or_unknown_fall_back_to_the_captions(tmp_path: Path, flag, expected):
    entries = [
        {**_entry("test", 0, ["nothing has changed", "the scene is the same"]), "changeflag": flag},
        {**_entry("test", 1, ["many houses were built"]), "changeflag": flag},
    ]
    archive = open_change_captions(write_levir(tmp_path / "LEVIR-CC", entries))
    assert not archive.skipped
    by_captions = [False, True]  # what the captions say when the flag says nothing
    assert [p.changed for p in archive.pairs] == (by_captions if expected is None else [expected, expected])
