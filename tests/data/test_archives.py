"""Opening archives: layouts, stable ids, labels, and the report of skipped files."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsir.data.archives import detect_layout, item_labels, label_names, open_archive
from rsir.data.demo import DEMO_CLASSES, DEMO_PER_CLASS, demo_archive_path
from rsir.data.items import ImageError


def _png(path: Path, side: int = 20, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(path)
    return path


def test_tiny_archive_items_and_exactly_the_bad_files_skipped(tiny):
    archive = open_archive(tiny.root)
    assert archive.kind == "scene-folders"
    assert archive.ids == sorted(tiny.good)
    skipped = {s.path.relative_to(tiny.root).as_posix(): s.reason for s in archive.skipped}
    assert set(skipped) == set(tiny.bad)  # and nothing of tiny.ignored (txt, json, hidden)
    for rel, word in tiny.bad.items():
        assert word in skipped[rel], (rel, skipped[rel])
        assert str(tiny.root) not in skipped[rel]  # the reason alone; the path is its own field
    for item in archive.items:
        assert item.labels == (item.id.split("/")[0],)
        want = tiny.good[item.id]
        assert (item.meta["width"], item.meta["height"], item.meta["bands"]) == (
            want.width,
            want.height,
            want.bands,
        )
    assert label_names(archive) == ["field", "forest", "urban"]
    assert item_labels(archive) == [it.labels for it in archive.items]
    assert "7 skipped" in archive.summary()


def test_strict_raises_listing_every_bad_file(tiny):
    with pytest.raises(ImageError) as caught:
        open_archive(tiny.root, strict=True)
    message = str(caught.value)
    assert f"{len(tiny.bad)} unusable" in message
    for rel in tiny.bad:
        assert rel.split("/")[-1] in message


def test_ids_are_stable_across_runs_and_locations(tiny, tmp_path):
    first = open_archive(tiny.root)
    moved = Path(shutil.copytree(tiny.root, tmp_path / "elsewhere"))
    again = open_archive(moved)
    assert first.ids == again.ids
    assert [it.labels for it in first.items] == [it.labels for it in again.items]


def test_folder_layout_when_images_are_loose(tmp_path):
    _png(tmp_path / "b.png")
    _png(tmp_path / "sub/deeper/a.png")
    _png(tmp_path / "sub/c.png")
    archive = open_archive(tmp_path)
    assert archive.kind == "folder" and not archive.is_labelled
    assert archive.ids == ["b", "sub/c", "sub/deeper/a"]


def test_single_class_folder_is_a_plain_folder(tmp_path):
    _png(tmp_path / "only/a.png")
    _png(tmp_path / "only/b.png")
    assert detect_layout(tmp_path) == "folder"


def test_forced_scene_layout_reports_loose_images_and_duplicate_ids(tmp_path):
    _png(tmp_path / "loose.png")
    _png(tmp_path / "x/a.png")
    _png(tmp_path / "x/a.jpg")
    _png(tmp_path / "y/b.png")
    archive = open_archive(tmp_path, layout="scene-folders")
    assert archive.ids == ["x/a", "y/b"]
    reasons = {s.path.name: s.reason for s in archive.skipped}
    assert "class folder" in reasons["loose.png"]
    assert "duplicate id" in reasons["a.png"]  # a.jpg sorts first and is kept
    assert archive.items[0].path.name == "a.jpg"


def test_bad_roots_and_empty_archives(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_archive(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        open_archive(_png(tmp_path / "file.png"))
    with pytest.raises(ValueError, match="unknown layout"):
        open_archive(tmp_path, layout="coco")
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="no usable images"):
        open_archive(empty)


def test_bigearthnet_archive_multilabels(bigearthnet_dir):
    archive = open_archive(bigearthnet_dir)
    assert archive.kind == "bigearthnet" and archive.is_multilabel
    patches = sorted(p.name for p in bigearthnet_dir.iterdir() if p.is_dir())
    assert archive.ids == patches and not archive.skipped
    for item in archive.items:
        meta = json.loads(next(item.path.glob("*_labels_metadata.json")).read_text())
        assert item.labels == tuple(meta["labels"])
        size = {k: item.meta[k] for k in ("width", "height", "bands", "dtype")}
        assert size == {"width": 120, "height": 120, "bands": 12, "dtype": "uint16"}
        assert item.meta["date"] == meta["acquisition_date"][:10] and len(item.meta["bbox"]) == 4  # test_geo.py


def test_bigearthnet_patch_without_labels_or_bands_is_skipped(bigearthnet_dir, tmp_path):
    root = Path(shutil.copytree(bigearthnet_dir, tmp_path / "ben"))
    first, second = sorted(p for p in root.iterdir() if p.is_dir())[:2]
    next(first.glob("*_labels_metadata.json")).unlink()
    next(second.glob("*_B11.tif")).unlink()
    archive = open_archive(root)
    reasons = {s.path.name: s.reason for s in archive.skipped}
    assert set(reasons) == {first.name, second.name}
    assert "labels" in reasons[first.name] and "B11" in reasons[second.name]
    assert len(archive) == len(list(bigearthnet_dir.iterdir())) - 2


def test_ucmerced_archive(ucmerced_dir):
    start = time.perf_counter()
    archive = open_archive(ucmerced_dir)
    seconds = time.perf_counter() - start
    assert archive.kind == "scene-folders" and not archive.skipped
    assert len(archive) == 2100 and len(label_names(archive)) == 21
    assert archive.ids[0] == "agricultural/agricultural00"
    assert seconds < 6, f"probing 2,100 files took {seconds:.1f} s"  # ~0.6 s warm on one core


def test_demo_archive_ships_with_attribution():
    root = demo_archive_path()
    assert (root.parent / "ATTRIBUTION.md").read_text().count("Yang") >= 1
    archive = open_archive(root, strict=True)
    assert len(label_names(archive)) == DEMO_CLASSES
    assert len(archive) == DEMO_CLASSES * DEMO_PER_CLASS


@pytest.mark.parametrize("layout", ["scene-folders", "folder"])
def test_symlinks_out_of_the_root_are_skipped_and_reported(tmp_path, layout):
    root = tmp_path / "archive"
    _png(root / "field" / "a.png")
    _png(root / "forest" / "b.png", value=30)
    secret = _png(tmp_path / "private" / "secret.png", value=200)
    (root / "forest" / "leak.png").symlink_to(secret)
    (root / "field" / "alias.png").symlink_to(root / "forest" / "b.png")  # a link inside the root is fine
    archive = open_archive(root, layout=layout)
    assert archive.ids == ["field/a", "field/alias", "forest/b"]
    assert [(s.path, s.reason) for s in archive.skipped] == [
        (root / "forest" / "leak.png", "a symlink to a file outside the archive root")
    ]
    with pytest.raises(ImageError, match="outside the archive root"):
        open_archive(root, layout=layout, strict=True)


def test_a_bigearthnet_patch_with_a_band_linked_out_of_the_root_is_skipped(bigearthnet_dir, tmp_path):
    root = Path(shutil.copytree(bigearthnet_dir, tmp_path / "ben"))
    patch = sorted(p for p in root.iterdir() if p.is_dir())[0]
    band = next(patch.glob("*_B04.tif"))
    outside = tmp_path / "elsewhere.tif"
    shutil.move(band, outside)
    band.symlink_to(outside)
    archive = open_archive(root)
    assert patch.name not in archive.ids and len(archive) == len(list(bigearthnet_dir.iterdir())) - 1
    assert [(s.path, s.reason) for s in archive.skipped] == [(patch, "a symlink to a file outside the archive root")]
