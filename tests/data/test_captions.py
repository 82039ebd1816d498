"""The Karpathy-layout single-date caption reader on the real UCM-Captions file and on broken files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsir.data.captions import open_scene_captions
from rsir.data.changecap import ChangeCaptionError


@pytest.fixture(scope="module")
def ucm_captions() -> Path:
    from shared_data import shared_or_skip

    return shared_or_skip("ucm-captions") / "dataset.json"


def test_ucm_names_resolve_to_the_scene_archive(ucm_captions):
    from shared_data import shared_or_skip

    archive = open_scene_captions(ucm_captions, shared_or_skip("ucmerced"))
    assert len(archive) == 2100 and not archive.skipped
    assert [len(archive.split(s)) for s in ("train", "val", "test")] == [1680, 210, 210]
    by_id = {p.id: p for p in archive.pairs}
    # N = 100 * class index + NN + 1: 1 = agricultural00, 101 = airplane00, 2100 = tenniscourt99
    assert by_id["agricultural/agricultural00"].meta["filename"] == "1.tif"
    assert "airplanes" in by_id["airplane/airplane00"].captions[0]
    assert by_id["tenniscourt/tenniscourt99"].meta["filename"] == "2100.tif"
    assert by_id["forest/forest99"].split == "test" and "forest" in by_id["forest/forest99"].captions[0]
    p = by_id["airplane/airplane00"]
    assert p.before == p.after and p.after.name == "airplane00.jpg"  # the JSON's .tif found as the shared .jpg
    test = archive.split("test")
    assert sum(len(p.captions) for p in test.pairs) == 1050


def test_the_demo_archive_maps_and_reports_the_scenes_it_lacks(ucm_captions):
    from rsir.data.demo import demo_archive_path

    archive = open_scene_captions(ucm_captions, demo_archive_path())
    assert len(archive) == 168 and len(archive.skipped) == 2100 - 168
    assert all("image not found" in s.reason for s in archive.skipped)
    assert "1932 skipped" in archive.summary()


def _jpg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(path)


def test_bad_entries_are_skipped_and_reported(tmp_path):
    images = tmp_path / "images"
    for name in ("airport_1.jpg", "airport_2.jpg", "beach_1.png", "dup.jpg"):
        _jpg(images / name)
    entries = [
        {"filename": "airport_1.jpg", "split": "train", "sentences": [{"raw": "Many planes . "}, {"raw": 3}]},
        {"filename": "airport_2.tif", "split": "val", "sentences": [{"raw": "a runway"}]},  # stem with another suffix
        {"filename": "beach_1.png", "split": "test", "sentences": [{"raw": " "}, {"raw": "waves on sand"}]},
        {"split": "train", "sentences": [{"raw": "no file name"}]},
        {"filename": "airport_1.jpg", "split": "holdout", "sentences": [{"raw": "bad split"}]},
        {"filename": "gone.jpg", "split": "test", "sentences": [{"raw": "missing image"}]},
        {"filename": "dup.jpg", "split": "train", "sentences": []},
        {"filename": "dup.jpg", "split": "train", "sentences": "not a list"},
        {"filename": "airport_1.jpg", "split": "test", "sentences": [{"raw": "listed twice"}]},
        "not an object",
    ]
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"images": entries, "dataset": "rsicd"}))
    archive = open_scene_captions(path, images)
    assert [(p.id, p.split, p.captions) for p in archive.pairs] == [
        ("airport_1", "train", ("Many planes.",)),
        ("airport_2", "val", ("a runway",)),
        ("beach_1", "test", ("waves on sand",)),
    ]
    reasons = " | ".join(s.reason for s in archive.skipped)
    for expected in ("not a string", "empty", "no filename", "unknown split", "image not found", "no usable caption"):
        assert expected in reasons
    assert "already listed" in reasons
    assert len(archive.split("test")) == 1


def test_unreadable_files_are_clear_errors(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(ChangeCaptionError, match="not found"):
        open_scene_captions(tmp_path / "nope.json", images)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ChangeCaptionError, match="cannot read"):
        open_scene_captions(bad, images)
    bad.write_text(json.dumps({"images": [{"filename": "x.jpg", "split": "train", "sentences": [{"raw": "a"}]}]}))
    with pytest.raises(ChangeCaptionError, match="no usable entry"):
        open_scene_captions(bad, images)
    with pytest.raises(ChangeCaptionError, match="image folder not found"):
        open_scene_captions(bad, tmp_path / "missing")


def test_a_partial_copy_of_uc_merced_keeps_the_numbering(ucm_captions, tmp_path):
    """N counts over UC Merced's 21 classes even when the folder holds only a few of them."""
    images = tmp_path / "images"
    _jpg(images / "beach" / "beach07.jpg")
    _jpg(images / "harbor" / "harbor00.jpg")
    archive = open_scene_captions(ucm_captions, images)
    by_id = {p.id: p for p in archive.pairs}
    assert set(by_id) == {"beach/beach07", "harbor/harbor00"}
    assert by_id["beach/beach07"].meta["filename"] == "308.tif" and "beach" in by_id["beach/beach07"].captions[0]
    assert by_id["harbor/harbor00"].meta["filename"] == "1001.tif"
