"""The CBIR commands end to end on the embedded UC Merced sample (real images, real weights)."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsir.cli.main import app

runner = CliRunner()


def rsir(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def as_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def demo_root(demo_archive) -> Path:
    return demo_archive.root


def test_search_by_id_and_image(demo_index: Path, demo_root: Path, tmp_path: Path) -> None:
    by_id = as_json(rsir("search", demo_index, "--id", "harbor/harbor00", "-k", "5", "--json"))
    assert [h["rank"] for h in by_id["hits"]] == [1, 2, 3, 4, 5]
    assert all(h["id"] != "harbor/harbor00" for h in by_id["hits"])
    assert sum(h["labels"] == ["harbor"] for h in by_id["hits"]) >= 3
    scores = [h["score"] for h in by_id["hits"]]
    assert scores == sorted(scores, reverse=True)

    image = demo_root / "harbor" / "harbor00.jpg"
    grid = tmp_path / "grid.png"
    by_image = as_json(rsir("search", demo_index, "--image", image, "-k", "5", "--grid", grid, "--json"))
    assert by_image["hits"][0]["id"] == "harbor/harbor00" and by_image["hits"][0]["score"] > 0.99
    assert grid.stat().st_size > 10_000


def test_search_errors_are_clear(demo_index: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    for args, message in [
        (("--image", bad), "bad.png"),
        (("--id", "no/such-id"), "unknown id"),
        ((), "exactly one"),
    ]:
        result = rsir("search", demo_index, *args)
        assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
    assert "not an rsir index" in rsir("search", tmp_path, "--id", "x").stderr


def test_index_from_other_encoder_is_refused(demo_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "idx"
    shutil.copytree(demo_index, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["weights_hash"] = "0000000000000000"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    image = Path(manifest["paths"][0])
    result = rsir("search", copy, "--image", image)
    assert result.exit_code == 2 and "index was built with" in result.stderr


def test_eval_json_keys_and_values(demo_root: Path) -> None:
    metrics = as_json(rsir("eval", "cbir", demo_root, "--split", "loo", "--k", "5", "--json"))
    assert set(metrics) == {"map@5", "map@5_hits", "p@5", "r_precision", "map", "n_queries"}
    assert metrics["n_queries"] == 168 and 0.6 < metrics["map@5"] <= 1


def test_train_then_honest_eval_beats_off_the_shelf(demo_root: Path, tmp_path: Path) -> None:
    head = tmp_path / "head"
    split = ("--split", "holdout:0.25", "--seed", "1")
    report = as_json(rsir("train", "cbir", demo_root, "--out", head, *split, "--epochs", "15", "--json"))
    assert report["n_train_items"] == 126
    base = as_json(rsir("eval", "cbir", demo_root, *split, "--json"))
    trained = as_json(rsir("eval", "cbir", demo_root, "--head", head, *split, "--json"))
    assert base["n_queries"] == trained["n_queries"] == 42
    assert trained["map@20"] > base["map@20"] + 0.03


def test_train_from_pairs_file(demo_root: Path, demo_archive, tmp_path: Path) -> None:
    ids = demo_archive.ids
    rows = ["id_a,id_b,similar"] + [f"{ids[i]},{ids[i + 1]},{int(i % 8 != 7)}" for i in range(0, 160, 2)]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join(rows))
    report = as_json(
        rsir("train", "cbir", demo_root, "--out", tmp_path / "h", "--pairs", pairs, "--epochs", "3", "--json")
    )
    assert report["n_pairs"] + report["n_pairs_dropped"] == 80
    pairs.write_text("id_a,id_b,similar\nnope,also-nope,1\n")
    result = rsir("train", "cbir", demo_root, "--out", tmp_path / "h2", "--pairs", pairs)
    assert result.exit_code == 2 and "unknown item id" in result.stderr


def test_missing_archive_is_a_clear_error(tmp_path: Path) -> None:
    result = rsir("index", tmp_path / "nowhere", "--out", tmp_path / "idx")
    assert result.exit_code == 2 and "archive not found" in result.stderr


def test_index_reports_skipped_files(demo_archive, tmp_path: Path) -> None:
    archive = tmp_path / "arch"
    for cls in ("beach", "forest"):
        (archive / cls).mkdir(parents=True)
        for src in sorted((demo_archive.root / cls).iterdir())[:3]:
            shutil.copy(src, archive / cls / src.name)
    (archive / "beach" / "empty.jpg").write_bytes(b"")
    report = as_json(rsir("index", archive, "--out", tmp_path / "idx", "--json"))
    assert report["n_items"] == 6 and report["n_skipped"] == 1
    assert "empty.jpg" in rsir("index", archive, "--out", tmp_path / "idx2", "--json").stderr
    strict = rsir("index", archive, "--out", tmp_path / "idx3", "--strict")
    assert strict.exit_code == 2 and "empty.jpg" in strict.stderr


@pytest.mark.slow
def test_finetuned_encoder_checkpoint_loads_everywhere(demo_root: Path, demo_archive, tmp_path: Path) -> None:
    head = tmp_path / "ft"
    split = ("--split", "holdout:0.25", "--seed", "0")
    as_json(rsir("train", "cbir", demo_root, "--out", head, *split, "--finetune", "1", "--epochs", "2", "--json"))
    assert (head / "encoder.pt").exists()
    metrics = as_json(rsir("eval", "cbir", demo_root, "--head", head, *split, "--json"))
    assert metrics["map@20"] > 0.7
    index = tmp_path / "idx"
    as_json(rsir("index", demo_root, "--head", head, "--out", index, "--json"))
    image = demo_root / "beach" / "beach00.jpg"
    hits = as_json(rsir("search", index, "--image", image, "-k", "3", "--json"))["hits"]
    assert hits[0]["id"] == "beach/beach00"


def test_index_skips_symlinks_out_of_the_archive_and_reports_them(demo_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    for cls in ("beach", "forest"):
        (root / cls).mkdir(parents=True)
        shutil.copy(demo_root / cls / f"{cls}00.jpg", root / cls)
    private = tmp_path / "private"
    private.mkdir()
    shutil.copy(demo_root / "harbor" / "harbor00.jpg", private / "payroll.jpg")
    (root / "forest" / "payroll.jpg").symlink_to(private / "payroll.jpg")
    result = rsir("index", root, "--out", tmp_path / "idx", "--json")
    report = as_json(result)
    assert report["n_items"] == 2 and report["n_skipped"] == 1
    assert "payroll.jpg" in result.stderr and "outside the archive root" in result.stderr
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["ids"] == ["beach/beach00", "forest/forest00"]
    assert not any("private" in p for p in manifest["paths"])
